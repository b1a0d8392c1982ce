//! The in-process API: `Target::bind(config)` on a free port, a real initiator (libiscsi's
//! `iscsi-inq` and `iscsi-readcapacity16`) talking to it, `shutdown()` flushing and returning.

use std::process::Command;

use iscsi_target::{LunSpec, ServerConfig, Target};

fn tool(name: &str) -> Option<std::path::PathBuf> {
    ["/usr/bin", "/usr/sbin", "/usr/local/bin"]
        .iter()
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| p.exists())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_serve_and_shut_down() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.img");
    let b = dir.path().join("b.img");
    std::fs::File::create(&a).unwrap().set_len(8 << 20).unwrap();
    std::fs::File::create(&b).unwrap().set_len(4 << 20).unwrap();
    let mut cfg = ServerConfig::single(
        "127.0.0.1:0".parse().unwrap(),
        "iqn.2026-11.io.pvd:api",
        std::slice::from_ref(&a),
    );
    let mut second = LunSpec::new(&b);
    second.block_size = 4096;
    cfg.targets[0].luns.push(second);
    let handle = Target::bind(cfg).await.expect("bind");
    let addr = handle.local_addr();
    assert_ne!(addr.port(), 0);
    assert_eq!(
        handle.url(1),
        format!("iscsi://{addr}/iqn.2026-11.io.pvd:api/1")
    );
    if let Some(inq) = tool("iscsi-readcapacity16") {
        let url = handle.url(1);
        let out = tokio::task::spawn_blocking(move || Command::new(inq).arg(url).output())
            .await
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(
            text.contains("LOGICAL BLOCK LENGTH IN BYTES:4096"),
            "{text}"
        );
        assert!(text.contains("Total size:4194304"), "{text}");
    }
    // A connection that never logs in does not keep shutdown waiting.
    let idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(40), handle.shutdown())
        .await
        .expect("shutdown hangs");
    drop(idle);
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn bad_configurations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.img");
    let cfg = ServerConfig::single("127.0.0.1:0".parse().unwrap(), "iqn.x:y", &[missing]);
    assert!(Target::bind(cfg).await.is_err());
    let mut cfg = ServerConfig::single("127.0.0.1:0".parse().unwrap(), "iqn.x:y", &[]);
    assert!(Target::bind(cfg.clone()).await.is_err(), "no LUN");
    cfg.targets.clear();
    assert!(Target::bind(cfg).await.is_err(), "no target");
    let text = r#"{"listen": "127.0.0.1:0", "targets": [{"iqn": "iqn.x:y", "luns": [{"path": "/nonexistent"}]}], "bogus": 1}"#;
    assert!(
        serde_json::from_str::<ServerConfig>(text).is_err(),
        "unknown keys are refused"
    );
}

/// `poll_us`: a polling target serves a real initiator, and its polling task ends with it
/// (no task is left on the runtime after `shutdown`).
#[tokio::test]
async fn a_polling_target_serves_and_stops_polling() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.img");
    std::fs::File::create(&a).unwrap().set_len(8 << 20).unwrap();
    let mut cfg = ServerConfig::single(
        "127.0.0.1:0".parse().unwrap(),
        "iqn.2026-11.io.pvd:poll",
        std::slice::from_ref(&a),
    );
    cfg.poll_us = 20_000;
    assert!(
        Target::bind(cfg.clone()).await.is_err(),
        "poll_us above 10000"
    );
    cfg.poll_us = 200;
    let handle = Target::bind(cfg).await.expect("bind");
    let inq =
        tool("iscsi-inq").expect("iscsi-inq (libiscsi-bin) is installed by scripts/install-peers");
    let url = handle.url(0);
    let out = tokio::task::spawn_blocking(move || Command::new(inq).arg(url).output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    handle.shutdown().await;
    let metrics = tokio::runtime::Handle::current().metrics();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while metrics.num_alive_tasks() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} tasks still alive after shutdown",
            metrics.num_alive_tasks()
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
