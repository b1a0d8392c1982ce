//! Measures NULL calls per second over one TCP connection: sequential, and with many calls in
//! flight (pipelined). Usage: `null_rate [ADDR PROG VERS] [--calls N] [--depth D]`; without an
//! address it starts a pvd server on 127.0.0.1 in the same process. `null_rate --serve PORT`
//! only serves program 0x20000042 version 1 on 127.0.0.1:PORT.

use pvd_rpc::{RpcClient, RpcServer};
use std::time::Instant;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let serve = flag("--serve", 0);
    if serve != 0 {
        let server = RpcServer::new();
        server.register_program(0x2000_0042, 1, |_c| async {
            Err(pvd_rpc::AcceptStat::PROC_UNAVAIL)
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", serve as u16))
            .await
            .unwrap();
        server.serve(listener).await.unwrap();
        return;
    }
    let calls = flag("--calls", 50_000);
    let depth = flag("--depth", 32);
    let (addr, prog, vers) = if args.len() >= 3 && !args[0].starts_with("--") {
        let prog = parse_u32(&args[1]);
        (args[0].clone(), prog, args[2].parse().unwrap())
    } else {
        let server = RpcServer::new();
        server.register_program(0x2000_0042, 1, |_c| async {
            Err(pvd_rpc::AcceptStat::PROC_UNAVAIL)
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        server.spawn(listener);
        (addr, 0x2000_0042, 1)
    };
    let client = RpcClient::connect(addr.as_str(), prog, vers).await.unwrap();
    client.null().await.unwrap();

    let start = Instant::now();
    for _ in 0..calls {
        client.null().await.unwrap();
    }
    let seq = calls as f64 / start.elapsed().as_secs_f64();

    let start = Instant::now();
    let per_task = calls / depth;
    let mut tasks = Vec::new();
    for _ in 0..depth {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_task {
                c.null().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let par = (per_task * depth) as f64 / start.elapsed().as_secs_f64();
    println!("server {addr} program {prog:#x} version {vers}");
    println!("sequential:        {seq:>10.0} NULL calls/s");
    println!(
        "{depth:>2} in flight:      {par:>10.0} NULL calls/s ({:.1}x)",
        par / seq
    );
}

fn parse_u32(s: &str) -> u32 {
    match s.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16).unwrap(),
        None => s.parse().unwrap(),
    }
}
