//! Data that `pvd target` acknowledged through SYNCHRONIZE CACHE, or wrote with FUA, survives
//! `kill -9` of the target: a restarted target serves it back.

mod target_common;

use pvd_integration::{require_tool, run_ok, sparse_file};
use std::process::Command;
use target_common::PvdTarget;

fn qemu_io(url: &str, cmds: &[&str]) -> String {
    let mut c = Command::new(require_tool("qemu-io"));
    c.args(["-f", "raw", "-t", "none"]);
    for cmd in cmds {
        c.arg("-c").arg(cmd);
    }
    c.arg(url);
    let out = run_ok(&mut c);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !text.contains("failed"),
        "qemu-io reported a failure:\n{text}"
    );
    text
}

#[test]
fn flushed_and_fua_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("lun.img");
    sparse_file(&img, 64 << 20);
    let mut t = PvdTarget::start(&[&img], &[]);
    let port = t.port;
    let url = t.url(0);
    qemu_io(
        &url,
        &[
            "write -P 0x5a 0 4M",
            "aio_write -P 0x5b 8M 1M",
            "aio_write -P 0x5c 9M 64k",
            "aio_flush",
            "flush",
            "write -f -P 0x6f 16M 512k",
            "write -f -P 0x70 20000000 4096",
        ],
    );
    // No shutdown: SIGKILL right after the acknowledgements.
    t.proc.kill();
    drop(t);
    let t = PvdTarget::start_on(port, &[&img], &[]);
    qemu_io(
        &t.url(0),
        &[
            "read -P 0x5a 0 4M",
            "read -P 0x5b 8M 1M",
            "read -P 0x5c 9M 64k",
            "read -P 0x6f 16M 512k",
            "read -P 0x70 20000000 4096",
        ],
    );
}
