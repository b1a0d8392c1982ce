//! RFC 5531 section 8.1 on top of TCP: a call retransmitted with the same xid after its reply
//! was lost (the connection closed before the reply was read) runs once on the pvd server; the
//! retransmission, sent on a new connection from a new port, gets the recorded reply. The
//! duplicate-request cache keys AUTH_SYS calls by machine name, uid, gid and stamp, and
//! AUTH_NONE calls by the client's IP address, plus xid, program, version and procedure.

use bytes::BytesMut;
use pvd_rpc::message::{encode_call, parse_message, CallHeader, RpcMessage, RPC_VERSION};
use pvd_rpc::record::{encode_record, RecordReader};
use pvd_rpc::server::reply;
use pvd_rpc::{xdr, AuthSysParams, OpaqueAuth, RpcCall, RpcServer};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const PROG: u32 = 0x2345_6789;
const PROC_INCREMENT: u32 = 1;

/// A server whose procedure 1 sleeps `delay_ms` (its argument), then increments and returns
/// a counter.
async fn start_server(counter: Arc<AtomicU32>) -> SocketAddr {
    let server = RpcServer::new();
    server.register_procedure(PROG, 1, PROC_INCREMENT, move |call: RpcCall| {
        let counter = counter.clone();
        async move {
            let delay_ms: u32 = call.args()?;
            tokio::time::sleep(Duration::from_millis(delay_ms as u64)).await;
            reply(&(counter.fetch_add(1, Ordering::SeqCst) + 1))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    server.spawn(listener);
    addr
}

fn call_record(xid: u32, cred: &OpaqueAuth, delay_ms: u32) -> BytesMut {
    let header = CallHeader {
        xid,
        rpcvers: RPC_VERSION,
        prog: PROG,
        vers: 1,
        proc_: PROC_INCREMENT,
        cred: cred.clone(),
        verf: OpaqueAuth::none(),
    };
    let msg = encode_call(&header, &xdr::to_bytes(&delay_ms));
    let mut rec = BytesMut::new();
    encode_record(&msg, 1 << 20, &mut rec);
    rec
}

/// Sends the call and closes the connection without reading the reply.
async fn send_and_hang_up(addr: SocketAddr, xid: u32, cred: &OpaqueAuth, delay_ms: u32) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&call_record(xid, cred, delay_ms))
        .await
        .unwrap();
    s.flush().await.unwrap();
    drop(s);
}

/// Sends the call on a fresh connection and returns the counter value in the reply.
async fn send_and_read(addr: SocketAddr, xid: u32, cred: &OpaqueAuth, delay_ms: u32) -> u32 {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&call_record(xid, cred, delay_ms))
        .await
        .unwrap();
    let (rd, _wr) = s.into_split();
    let mut rr = RecordReader::new(rd, 1 << 20);
    let rec = tokio::time::timeout(Duration::from_secs(20), rr.read_record())
        .await
        .expect("reply in time")
        .unwrap()
        .expect("a reply record");
    let (msg, results) = parse_message(&rec).unwrap();
    let RpcMessage::Reply { xid: got, .. } = msg else {
        panic!("not a reply: {msg:?}")
    };
    assert_eq!(got, xid);
    xdr::from_bytes(&results).unwrap()
}

async fn wait_for_count(counter: &AtomicU32, want: u32) {
    let start = std::time::Instant::now();
    while counter.load(Ordering::SeqCst) < want {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "handler never ran"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn auth_sys(stamp: u32) -> OpaqueAuth {
    OpaqueAuth::sys(&AuthSysParams {
        stamp,
        machinename: "pvd-test-client".into(),
        uid: 1000,
        gid: 1000,
        gids: vec![1000, 27],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_reply_is_replayed_not_rerun() {
    let counter = Arc::new(AtomicU32::new(0));
    let addr = start_server(counter.clone()).await;
    let cred = auth_sys(0x5eed);

    // The reply is lost: the client hangs up before reading it.
    send_and_hang_up(addr, 1000, &cred, 0).await;
    wait_for_count(&counter, 1).await;
    // Give the server time to finish writing into the closed connection.
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Retransmission with the same xid on a new connection (new source port).
    assert_eq!(send_and_read(addr, 1000, &cred, 0).await, 1);
    assert_eq!(send_and_read(addr, 1000, &cred, 0).await, 1);
    assert_eq!(counter.load(Ordering::SeqCst), 1, "the call ran twice");

    // A new xid is a new call.
    assert_eq!(send_and_read(addr, 1001, &cred, 0).await, 2);
    // The same xid from another client (another stamp) is a different call.
    assert_eq!(send_and_read(addr, 1000, &auth_sys(0xbeef), 0).await, 3);
    assert_eq!(counter.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retransmission_of_a_running_call_waits_for_its_reply() {
    let counter = Arc::new(AtomicU32::new(0));
    let addr = start_server(counter.clone()).await;
    let cred = auth_sys(77);

    // The call takes 500 ms; the client gives up on the connection at once and retransmits.
    send_and_hang_up(addr, 4242, &cred, 500).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(counter.load(Ordering::SeqCst), 0, "still running");
    assert_eq!(send_and_read(addr, 4242, &cred, 500).await, 1);
    assert_eq!(counter.load(Ordering::SeqCst), 1, "the call ran twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_none_retransmission_from_the_same_address_runs_once() {
    let counter = Arc::new(AtomicU32::new(0));
    let addr = start_server(counter.clone()).await;
    let none = OpaqueAuth::none();
    send_and_hang_up(addr, 9, &none, 0).await;
    wait_for_count(&counter, 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(send_and_read(addr, 9, &none, 0).await, 1);
    assert_eq!(counter.load(Ordering::SeqCst), 1);
}
