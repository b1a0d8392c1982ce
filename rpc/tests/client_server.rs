//! RFC 5531: the client and server of this crate against each other on loopback TCP.

use bytes::{Bytes, BytesMut};
use pvd_rpc::message::{
    encode_call, parse_message, CallHeader, RejectedReply, ReplyBody, RpcMessage,
};
use pvd_rpc::record::{encode_record, RecordReader};
use pvd_rpc::server::reply;
use pvd_rpc::xdr::Opaque;
use pvd_rpc::{
    AcceptStat, AuthStat, AuthSysParams, OpaqueAuth, RpcAuth, RpcCall, RpcClient, RpcClientConfig,
    RpcError, RpcServer,
};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

const PROG: u32 = 0x2000_1234;

pvd_rpc::xdr_struct! {
    #[derive(Debug, Clone, PartialEq)]
    struct Echo {
        name: String [max = 64],
        data: Opaque [max = 4 << 20],
        nums: Vec<i64> [max = 100],
        next: Option<Box<Echo>>,
    }
}

async fn start(server: RpcServer) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    server.spawn(listener);
    addr
}

fn echo_server(counter: Arc<AtomicU32>) -> RpcServer {
    let server = RpcServer::new();
    server.register_program(PROG, 2, move |call: RpcCall| {
        let counter = counter.clone();
        async move {
            match call.proc_ {
                1 => {
                    let e: Echo = call.args()?;
                    reply(&e)
                }
                2 => {
                    counter.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    reply(&counter.load(Ordering::SeqCst))
                }
                3 => {
                    // Sleeps for as long as the argument says (ms), answers it back.
                    let ms: u32 = call.args()?;
                    tokio::time::sleep(Duration::from_millis(ms as u64)).await;
                    reply(&ms)
                }
                4 => Err(AcceptStat::SYSTEM_ERR),
                _ => Err(AcceptStat::PROC_UNAVAIL),
            }
        }
    });
    server.register_program(PROG, 4, |_call: RpcCall| async { reply(&()) });
    server
}

#[tokio::test]
async fn calls_and_every_accept_stat() {
    let addr = start(echo_server(Arc::new(AtomicU32::new(0)))).await;
    let client = RpcClient::connect(addr, PROG, 2).await.unwrap();
    client.null().await.unwrap();
    let big: Vec<u8> = (0..(1 << 20) + 3).map(|i| (i * 7) as u8).collect();
    let e = Echo {
        name: "outer".into(),
        data: big.into(),
        nums: vec![-1, i64::MAX, 0],
        next: Some(Box::new(Echo {
            name: "inner".into(),
            data: Opaque::default(),
            nums: vec![],
            next: None,
        })),
    };
    let back: Echo = client.call(1, &e).await.unwrap();
    assert_eq!(back, e);

    // GARBAGE_ARGS: a u32 where an Echo is expected.
    assert!(matches!(
        client.call::<u32, Echo>(1, &7).await,
        Err(RpcError::GarbageArgs)
    ));
    assert!(matches!(
        client.call::<(), ()>(99, &()).await,
        Err(RpcError::ProcUnavail)
    ));
    assert!(matches!(
        client.call::<(), ()>(4, &()).await,
        Err(RpcError::SystemErr)
    ));
    let other = RpcClient::connect(addr, PROG, 3).await.unwrap();
    assert!(matches!(
        other.null().await,
        Err(RpcError::ProgMismatch { low: 2, high: 4 })
    ));
    let none = RpcClient::connect(addr, PROG + 1, 1).await.unwrap();
    assert!(matches!(none.null().await, Err(RpcError::ProgUnavail)));
}

#[tokio::test]
async fn denied_replies() {
    let addr = start(echo_server(Arc::new(AtomicU32::new(0)))).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut h = CallHeader {
        xid: 5,
        rpcvers: 3,
        prog: PROG,
        vers: 2,
        proc_: 0,
        cred: OpaqueAuth::none(),
        verf: OpaqueAuth::none(),
    };
    let mut wire = BytesMut::new();
    encode_record(&encode_call(&h, &[]), 1 << 20, &mut wire);
    h.rpcvers = 2;
    h.xid = 6;
    h.cred = OpaqueAuth {
        flavor: pvd_rpc::AuthFlavor::AUTH_DH,
        body: Bytes::new(),
    };
    encode_record(&encode_call(&h, &[]), 1 << 20, &mut wire);
    s.write_all(&wire).await.unwrap();
    let (rd, _wr) = s.into_split();
    let mut rr = RecordReader::new(rd, 1 << 20);
    let mut seen = 0;
    while seen < 2 {
        let rec = rr.read_record().await.unwrap().unwrap();
        let (msg, _) = parse_message(&rec).unwrap();
        match msg {
            RpcMessage::Reply { xid: 5, body } => assert_eq!(
                body,
                ReplyBody::Denied(RejectedReply::RpcMismatch { low: 2, high: 2 })
            ),
            RpcMessage::Reply { xid: 6, body } => assert_eq!(
                body,
                ReplyBody::Denied(RejectedReply::AuthError(AuthStat::AUTH_REJECTEDCRED))
            ),
            other => panic!("unexpected {other:?}"),
        }
        seen += 1;
    }
}

#[tokio::test]
async fn pipelined_calls_complete_out_of_order() {
    let addr = start(echo_server(Arc::new(AtomicU32::new(0)))).await;
    let client = RpcClient::connect(addr, PROG, 2).await.unwrap();
    let start = std::time::Instant::now();
    let mut tasks = vec![];
    for i in 0..32u32 {
        let c = client.clone();
        // Later calls finish first.
        tasks.push(tokio::spawn(async move {
            let ms = 400 - i * 10;
            let got: u32 = c.call(3, &ms).await.unwrap();
            assert_eq!(got, ms);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Sequentially this would take over 8 s.
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn timeout_retransmits_same_xid_and_runs_once() {
    let counter = Arc::new(AtomicU32::new(0));
    let addr = start(echo_server(counter.clone())).await;
    let cfg = RpcClientConfig {
        timeout: Duration::from_millis(100),
        retries: 10,
        auth: RpcAuth::Sys(AuthSysParams::current(42)),
        ..Default::default()
    };
    let client = RpcClient::connect_with(addr, PROG, 2, cfg).await.unwrap();
    // Proc 2 takes 300 ms: the first attempts time out and are retransmitted while running.
    let n: u32 = client.call(2, &()).await.unwrap();
    assert_eq!(n, 1);
    assert_eq!(counter.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn reconnects_after_server_drops_connection() {
    // A server that closes the first connection as soon as it reads a call, then serves normally.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = echo_server(Arc::new(AtomicU32::new(0)));
    tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        let (rd, _wr) = s.into_split();
        let mut rr = RecordReader::new(rd, 1 << 20);
        let _ = rr.read_record().await;
        drop(rr);
        drop(_wr);
        server.serve(listener).await.unwrap();
    });
    let cfg = RpcClientConfig {
        timeout: Duration::from_secs(5),
        retries: 3,
        ..Default::default()
    };
    let client = RpcClient::connect_with(addr, PROG, 2, cfg).await.unwrap();
    let got: u32 = client.call(3, &1u32).await.unwrap();
    assert_eq!(got, 1);
}

#[tokio::test]
async fn server_answers_multi_fragment_call() {
    let addr = start(echo_server(Arc::new(AtomicU32::new(0)))).await;
    let cfg = RpcClientConfig {
        fragment_size: 1000,
        ..Default::default()
    };
    let client = RpcClient::connect_with(addr, PROG, 2, cfg).await.unwrap();
    let e = Echo {
        name: "frag".into(),
        data: vec![9u8; 100_001].into(),
        nums: (0..100).collect(),
        next: None,
    };
    let back: Echo = client.call(1, &e).await.unwrap();
    assert_eq!(back, e);
}
