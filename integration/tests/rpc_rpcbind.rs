//! RFC 1833 against the system's rpcbind and rpcinfo: a pvd RPC server registers (RPCBIND v4
//! SET and PMAP v2 SET), `rpcinfo` lists it and calls its NULL procedure through rpcbind and
//! directly; pvd's rpcbind clients (PMAP DUMP/GETPORT, RPCBIND v4 GETADDR/DUMP) agree with
//! `rpcinfo -p`.

use pvd_integration::rpcbind::{ensure_rpcbind, random_program, RPCBIND_ADDR};
use pvd_integration::{require_tool, run_ok};
use pvd_rpc::rpcbind::{
    register_with_rpcbind, socket_addr_from_uaddr, unregister_with_rpcbind, Mapping, PmapClient,
    RpcbClient, IPPROTO_TCP, RPCBIND_PROG, RPCBIND_VERS4,
};
use pvd_rpc::server::reply;
use pvd_rpc::{RpcCall, RpcServer};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::Command;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Starts a server for `prog` versions 1 and 2 on 127.0.0.1; returns its port.
fn start_server(rt: &tokio::runtime::Runtime, prog: u32) -> u16 {
    rt.block_on(async {
        let server = RpcServer::new();
        for vers in [1, 2] {
            server.register_program(prog, vers, |call: RpcCall| async move {
                match call.proc_ {
                    1 => reply(&call.vers),
                    _ => Err(pvd_rpc::AcceptStat::PROC_UNAVAIL),
                }
            });
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        server.spawn(listener);
        port
    })
}

/// (program, version, protocol, port) rows of `rpcinfo -p`.
fn rpcinfo_p() -> HashSet<(u32, u32, String, u16)> {
    let out = run_ok(Command::new(require_tool("rpcinfo")).args(["-p", "127.0.0.1"]));
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 4 {
                return None;
            }
            Some((
                f[0].parse().ok()?,
                f[1].parse().ok()?,
                f[2].to_string(),
                f[3].parse().ok()?,
            ))
        })
        .collect()
}

fn as_rows(dump: &[Mapping]) -> HashSet<(u32, u32, String, u16)> {
    dump.iter()
        .map(|m| {
            let proto = match m.prot {
                IPPROTO_TCP => "tcp".to_string(),
                17 => "udp".to_string(),
                other => other.to_string(),
            };
            (m.prog, m.vers, proto, m.port as u16)
        })
        .collect()
}

#[test]
fn server_registers_and_rpcinfo_calls_null() {
    ensure_rpcbind();
    let rt = runtime();
    let prog = random_program();
    let port = start_server(&rt, prog);
    rt.block_on(async {
        register_with_rpcbind(prog, 1, port).await.unwrap();
        register_with_rpcbind(prog, 2, port).await.unwrap();
        // Registering again is a no-op, not an error.
        register_with_rpcbind(prog, 1, port).await.unwrap();
    });

    let rows = rpcinfo_p();
    for vers in [1, 2] {
        assert!(
            rows.contains(&(prog, vers, "tcp".into(), port)),
            "rpcinfo -p does not list program {prog} version {vers} on tcp port {port}: {rows:?}"
        );
    }

    let rpcinfo = require_tool("rpcinfo");
    for vers in ["1", "2"] {
        // Through rpcbind.
        let out = run_ok(Command::new(&rpcinfo).args(["-t", "127.0.0.1", &prog.to_string(), vers]));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("ready and waiting"),
            "rpcinfo -t said: {text}"
        );
        // Straight to the port.
        let out = run_ok(Command::new(&rpcinfo).args([
            "-n",
            &port.to_string(),
            "-t",
            "127.0.0.1",
            &prog.to_string(),
            vers,
        ]));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("ready and waiting"),
            "rpcinfo -n -t said: {text}"
        );
    }
    // A version the server does not have: rpcinfo reports the mismatch and fails.
    let out = Command::new(&rpcinfo)
        .args([
            "-n",
            &port.to_string(),
            "-t",
            "127.0.0.1",
            &prog.to_string(),
            "7",
        ])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "rpcinfo -t for a missing version must fail"
    );

    rt.block_on(async {
        unregister_with_rpcbind(prog, 1).await.unwrap();
        unregister_with_rpcbind(prog, 2).await.unwrap();
    });
    let rows = rpcinfo_p();
    assert!(
        !rows.iter().any(|r| r.0 == prog),
        "program {prog} still listed after unregistering: {rows:?}"
    );
}

#[test]
fn pmap_and_rpcbind_queries_match_rpcinfo() {
    ensure_rpcbind();
    let rt = runtime();
    let prog = random_program();
    let port = start_server(&rt, prog);
    let rpcbind: SocketAddr = RPCBIND_ADDR.parse().unwrap();
    rt.block_on(register_with_rpcbind(prog, 1, port)).unwrap();

    let (dump_before, pmap_port, v4_addr, v4_dump, missing) = rt.block_on(async {
        let pmap = PmapClient::connect(rpcbind).await.unwrap();
        let dump = pmap.dump().await.unwrap();
        let got = pmap.getport(prog, 1, IPPROTO_TCP).await.unwrap();
        // rpcbind answers GETPORT for a missing version with another version's port, so ask
        // for a program nobody registered.
        let missing = pmap.getport(prog ^ 1, 1, IPPROTO_TCP).await.unwrap();
        let rpcb = RpcbClient::connect(rpcbind, RPCBIND_VERS4).await.unwrap();
        let addr = rpcb.getaddr(prog, 1, "tcp").await.unwrap();
        let v4dump = rpcb.dump().await.unwrap();
        (dump, got, addr, v4dump, missing)
    });
    let rows = rpcinfo_p();
    let dump_after = rt.block_on(async {
        PmapClient::connect(rpcbind)
            .await
            .unwrap()
            .dump()
            .await
            .unwrap()
    });

    assert_eq!(pmap_port, port, "PMAP GETPORT");
    assert_eq!(missing, 0, "PMAP GETPORT of an unregistered program");
    let uaddr = v4_addr.expect("RPCBIND GETADDR found nothing");
    assert_eq!(socket_addr_from_uaddr(&uaddr).unwrap().port(), port);

    // Other tests may (un)register programs meanwhile: compare against the union and the
    // intersection of two dumps taken around `rpcinfo -p`.
    let before = as_rows(&dump_before);
    let after = as_rows(&dump_after);
    for row in &rows {
        assert!(
            before.contains(row) || after.contains(row),
            "rpcinfo -p lists {row:?}, PMAP DUMP does not"
        );
    }
    for row in before.intersection(&after) {
        assert!(
            rows.contains(row),
            "PMAP DUMP lists {row:?}, rpcinfo -p does not"
        );
    }
    assert!(before.contains(&(prog, 1, "tcp".into(), port)));
    assert!(before.contains(&(RPCBIND_PROG, 2, "tcp".into(), 111)));
    assert!(
        v4_dump
            .iter()
            .any(|r| r.prog == prog && r.vers == 1 && r.netid == "tcp"),
        "RPCBIND DUMP lacks our registration: {v4_dump:?}"
    );
    assert!(v4_dump
        .iter()
        .any(|r| r.prog == RPCBIND_PROG && r.vers == 4 && r.netid == "tcp"));

    rt.block_on(unregister_with_rpcbind(prog, 1)).unwrap();
    let gone = rt.block_on(async {
        PmapClient::connect(rpcbind)
            .await
            .unwrap()
            .getport(prog, 1, IPPROTO_TCP)
            .await
            .unwrap()
    });
    assert_eq!(gone, 0);
}
