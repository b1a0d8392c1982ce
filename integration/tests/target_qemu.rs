//! `pvd target` with QEMU's iSCSI driver (libiscsi inside qemu-io / qemu-img) and libiscsi's
//! command line tools.

mod target_common;

use pvd_integration::{random_file, require_tool, run_ok, sparse_file};
use std::io::Read;
use std::process::Command;
use target_common::{PvdTarget, IQN};

fn qemu_io(url: &str, cmds: &[&str]) -> String {
    let mut c = Command::new(require_tool("qemu-io"));
    c.args(["-f", "raw"]);
    for cmd in cmds {
        c.arg("-c").arg(cmd);
    }
    c.arg(url);
    let out = run_ok(&mut c);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !text.contains("failed") && !text.contains("error"),
        "qemu-io reported a problem:\n{text}"
    );
    text
}

#[test]
fn libiscsi_tools_show_sane_answers() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.img");
    let b = dir.path().join("b.img");
    sparse_file(&a, 64 << 20);
    sparse_file(&b, 32 << 20);
    let t = PvdTarget::start(&[&a, &b], &[]);

    let out = run_ok(
        Command::new(require_tool("iscsi-ls"))
            .args(["-s", &format!("iscsi://127.0.0.1:{}", t.port)]),
    );
    let ls = String::from_utf8_lossy(&out.stdout);
    assert!(
        ls.contains(&format!("Target:{IQN} Portal:127.0.0.1:{},1", t.port)),
        "{ls}"
    );
    assert!(ls.contains("Lun:0") && ls.contains("Lun:1"), "{ls}");
    assert!(ls.contains("DIRECT_ACCESS"), "{ls}");

    let out = run_ok(Command::new(require_tool("iscsi-inq")).arg(t.url(0)));
    let inq = String::from_utf8_lossy(&out.stdout);
    assert!(
        inq.contains("Peripheral Device Type:DIRECT_ACCESS"),
        "{inq}"
    );
    assert!(inq.contains("Vendor:PVD"), "{inq}");
    assert!(inq.contains("CmdQue:1"), "{inq}");

    let out = run_ok(Command::new(require_tool("iscsi-readcapacity16")).arg(t.url(1)));
    let cap = String::from_utf8_lossy(&out.stdout);
    assert!(
        cap.contains(&format!(
            "RETURNED LOGICAL BLOCK ADDRESS:{}",
            (32 << 20) / 512 - 1
        )),
        "{cap}"
    );
    assert!(cap.contains("LOGICAL BLOCK LENGTH IN BYTES:512"), "{cap}");
    assert!(cap.contains(&format!("Total size:{}", 32 << 20)), "{cap}");
}

#[test]
fn qemu_io_patterns_aio_and_flush() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("lun.img");
    sparse_file(&img, 96 << 20);
    let t = PvdTarget::start(&[&img], &[]);
    let url = t.url(0);
    qemu_io(
        &url,
        &[
            // aligned, 4 KiB to 16 MiB
            "write -P 0x11 0 4k",
            "write -P 0x12 64k 128k",
            "write -P 0x13 1M 16M",
            // unaligned start and length (QEMU read-modify-writes the edges)
            "write -P 0x21 20000001 5000",
            "write -P 0x22 30000003 1000003",
            "flush",
            "read -P 0x11 0 4k",
            "read -P 0x12 64k 128k",
            "read -P 0x13 1M 16M",
            "read -P 0x21 20000001 5000",
            "read -P 0x22 30000003 1000003",
            // concurrent AIO
            "aio_write -P 0x31 40M 4M",
            "aio_write -P 0x32 44M 1M",
            "aio_write -P 0x33 45M 4k",
            "aio_write -P 0x34 46M 8M",
            "aio_flush",
            "aio_read -P 0x31 40M 4M",
            "aio_read -P 0x32 44M 1M",
            "aio_read -P 0x33 45M 4k",
            "aio_read -P 0x34 46M 8M",
            "aio_flush",
        ],
    );
    // A new session sees the same data; untouched bytes around an unaligned write are intact.
    qemu_io(
        &url,
        &[
            "read -P 0x13 1M 16M",
            "read -P 0x0 19999488 513",
            "read -P 0x21 20000001 5000",
            "read -P 0x0 20005001 100",
            "read -P 0x34 46M 8M",
        ],
    );
    // And the backing file holds exactly what was written.
    let mut f = std::fs::File::open(&img).unwrap();
    let mut head = vec![0u8; 4096];
    f.read_exact(&mut head).unwrap();
    assert!(head.iter().all(|&b| b == 0x11));
}

fn files_equal(a: &std::path::Path, b: &std::path::Path) -> bool {
    let mut fa = std::fs::File::open(a).unwrap();
    let mut fb = std::fs::File::open(b).unwrap();
    let mut ba = vec![0u8; 1 << 20];
    let mut bb = vec![0u8; 1 << 20];
    loop {
        let na = read_full(&mut fa, &mut ba);
        let nb = read_full(&mut fb, &mut bb);
        if na != nb || ba[..na] != bb[..nb] {
            return false;
        }
        if na == 0 {
            return true;
        }
    }
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]).unwrap() {
            0 => break,
            k => n += k,
        }
    }
    n
}

#[test]
fn qemu_img_convert_round_trip_256m() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.img");
    let lun = dir.path().join("lun.img");
    let back = dir.path().join("back.img");
    random_file(&src, 256 << 20, 7);
    sparse_file(&lun, 256 << 20);
    let t = PvdTarget::start(&[&lun], &[]);
    let qemu_img = require_tool("qemu-img");
    run_ok(
        Command::new(&qemu_img)
            .args(["convert", "-n", "-f", "raw", "-O", "raw"])
            .arg(&src)
            .arg(t.url(0)),
    );
    run_ok(
        Command::new(&qemu_img)
            .args(["convert", "-f", "raw", "-O", "raw"])
            .arg(t.url(0))
            .arg(&back),
    );
    assert!(
        files_equal(&src, &back),
        "image read back from the LUN differs"
    );
    assert!(
        files_equal(&src, &lun),
        "backing file differs from the image"
    );
}
