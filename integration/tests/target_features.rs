//! `pvd target` options with real peers: CHAP (one-way and mutual), the initiator ACL, a JSON
//! `--config` with several targets, `--register` with the pvd master, SIGTERM.

mod target_common;

use pvd_integration::{free_port, pvd, require_tool, run_ok, sparse_file, wait_for_port, Proc};
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};
use target_common::{PvdTarget, IQN};

fn inq(initiator: &str, url: &str, env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(require_tool("iscsi-inq"))
        .args(["-i", initiator, url])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success() && text.contains("DIRECT_ACCESS"), text)
}

#[test]
fn chap_mutual_chap_and_acl() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("lun.img");
    sparse_file(&img, 8 << 20);
    let t = PvdTarget::start(
        &[&img],
        &[
            "--chap",
            "alice:secretsecret12",
            "--chap-mutual",
            "tgt:targetsecret34",
            "--allow-initiator",
            "iqn.2026-11.io.test:ok",
        ],
    );
    let url = |cred: &str| format!("iscsi://{cred}@127.0.0.1:{}/{IQN}/0", t.port);
    let ok = "iqn.2026-11.io.test:ok";
    let (good, text) = inq(ok, &url("alice%secretsecret12"), &[]);
    assert!(good, "CHAP login failed:\n{text}");
    let (good, text) = inq(ok, &url("alice%wrongsecret99"), &[]);
    assert!(!good && text.contains("Authentication failure"), "{text}");
    let (good, text) = inq(
        "iqn.2026-11.io.test:other",
        &url("alice%secretsecret12"),
        &[],
    );
    assert!(!good && text.contains("Authorization failure"), "{text}");
    let mutual = [
        ("LIBISCSI_CHAP_TARGET_USERNAME", "tgt"),
        ("LIBISCSI_CHAP_TARGET_PASSWORD", "targetsecret34"),
    ];
    let (good, text) = inq(ok, &url("alice%secretsecret12"), &mutual);
    assert!(good, "mutual CHAP login failed:\n{text}");
    let wrong = [
        ("LIBISCSI_CHAP_TARGET_USERNAME", "tgt"),
        ("LIBISCSI_CHAP_TARGET_PASSWORD", "notthesecret"),
    ];
    let (good, _) = inq(ok, &url("alice%secretsecret12"), &wrong);
    assert!(
        !good,
        "initiator accepted a target that does not know the mutual secret"
    );
}

#[test]
fn json_config_with_two_targets_and_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.img");
    let b = dir.path().join("b.img");
    let c = dir.path().join("c.img");
    sparse_file(&a, 8 << 20);
    sparse_file(&b, 4 << 20);
    sparse_file(&c, 16 << 20);
    let port = free_port();
    let cfg = serde_json::json!({
        "listen": format!("127.0.0.1:{port}"),
        "targets": [
            {"iqn": "iqn.2026-11.io.pvd:one", "luns": [{"path": a}, {"path": b, "read_only": true}]},
            {"iqn": "iqn.2026-11.io.pvd:two", "luns": [{"path": c, "block_size": 4096}]}
        ],
        "nop_interval_secs": 0
    });
    let cfg_path = dir.path().join("target.json");
    std::fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    let mut p = Proc::spawn(
        "pvd target",
        pvd().arg("target").arg("--config").arg(&cfg_path),
    );
    wait_for_port(
        SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(20),
    );
    let out = run_ok(
        Command::new(require_tool("iscsi-ls")).args(["-s", &format!("iscsi://127.0.0.1:{port}")]),
    );
    let ls = String::from_utf8_lossy(&out.stdout);
    assert!(
        ls.contains("Target:iqn.2026-11.io.pvd:one")
            && ls.contains("Target:iqn.2026-11.io.pvd:two"),
        "{ls}"
    );
    let out = run_ok(
        Command::new(require_tool("iscsi-readcapacity16"))
            .arg(format!("iscsi://127.0.0.1:{port}/iqn.2026-11.io.pvd:two/0")),
    );
    let cap = String::from_utf8_lossy(&out.stdout);
    assert!(cap.contains("LOGICAL BLOCK LENGTH IN BYTES:4096"), "{cap}");
    // The read-only LUN refuses writes.
    let out = Command::new(require_tool("qemu-io"))
        .args(["-f", "raw", "-c", "write 0 4k"])
        .arg(format!("iscsi://127.0.0.1:{port}/iqn.2026-11.io.pvd:one/1"))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.to_lowercase().contains("failed")
            || text.contains("denied")
            || text.contains("read-only")
            || !out.status.success(),
        "write to a read-only LUN succeeded:\n{text}"
    );
    let status = p
        .terminate(Duration::from_secs(30))
        .expect("no exit after SIGTERM");
    assert!(status.success(), "exit status {status}");
}

#[test]
fn register_with_master() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("lun.img");
    sparse_file(&img, 256 << 20);
    let mport = free_port();
    let master = format!("127.0.0.1:{mport}");
    // The target starts first: registration retries until the master answers.
    let t = PvdTarget::start(&[&img], &["--register", &master]);
    std::thread::sleep(Duration::from_millis(500));
    let _m = Proc::spawn(
        "pvd master",
        pvd()
            .args(["master", "--listen", &master, "--state-dir"])
            .arg(dir.path().join("master")),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = pvd()
            .args(["master", "status", "--master", &master, "--timeout", "10"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains(IQN) && text.contains(&format!("127.0.0.1:{}", t.port)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "LUN never registered; master status:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}
