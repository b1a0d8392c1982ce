//! `pvd iscsi` against tgtd: discover, info, write (file and stdin), read (file and stdout),
//! bench, and clear errors for bad input.

use std::io::Write;
use std::process::{Command, Stdio};

use pvd_integration::tgtd::Tgtd;
use pvd_integration::{pvd, random_file, run_fails, run_ok, sparse_file};

const IQN: &str = "iqn.2026-01.org.pvd:initiator-cli";

fn iscsi(t: &Tgtd, sub: &str) -> Command {
    let mut c = pvd();
    c.args(["iscsi", sub, "--portal", &t.addr().to_string()]);
    if sub != "discover" {
        c.args(["--iqn", IQN, "--lun", "1"]);
    }
    c
}

fn fails_with(c: &mut Command, needle: &str) {
    let err = run_fails(c);
    assert!(
        err.contains(needle),
        "{c:?}: stderr lacks {needle:?}:\n{err}"
    );
}

#[test]
fn cli_round_trip_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let backing = dir.path().join("lun.img");
    sparse_file(&backing, 32 << 20);
    let t = Tgtd::start(IQN, &backing);

    let out = run_ok(&mut iscsi(&t, "discover"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(IQN), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{}", t.port)), "{text}");

    let out = run_ok(&mut iscsi(&t, "info"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("block size:   512"), "{text}");
    assert!(
        text.contains(&format!("capacity:     {} bytes", 32 << 20)),
        "{text}"
    );

    // File in, file out, at an offset with a suffix.
    let input = dir.path().join("in.bin");
    random_file(&input, 3 << 20, 9);
    run_ok(
        iscsi(&t, "write")
            .args(["--offset", "1M", "--input"])
            .arg(&input),
    );
    let output = dir.path().join("out.bin");
    run_ok(
        iscsi(&t, "read")
            .args(["--offset", "1MiB", "--length", "3M", "--output"])
            .arg(&output),
    );
    assert!(std::fs::read(&input).unwrap() == std::fs::read(&output).unwrap());

    // stdin in, stdout out.
    let data: Vec<u8> = (0..65536u32).map(|i| (i * 7) as u8).collect();
    let mut child = iscsi(&t, "write")
        .args(["--offset", "8K", "--input", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&data).unwrap();
    assert!(child.wait().unwrap().success());
    let out =
        run_ok(iscsi(&t, "read").args(["--offset", "8192", "--length", "64K", "--output", "-"]));
    assert!(out.stdout == data);

    let out = run_ok(iscsi(&t, "bench").args([
        "--rw",
        "randwrite",
        "--bs",
        "4K",
        "--qd",
        "8",
        "--count",
        "500",
    ]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("iops=") && text.contains("p99="), "{text}");

    fails_with(
        iscsi(&t, "read").args(["--offset", "100", "--length", "512", "--output", "-"]),
        "not a multiple",
    );
    fails_with(
        iscsi(&t, "read").args(["--offset", "1X", "--length", "512", "--output", "-"]),
        "unknown size suffix",
    );
    fails_with(
        iscsi(&t, "read").args(["--offset", "32M", "--length", "512", "--output", "-"]),
        "past the end",
    );
    fails_with(iscsi(&t, "info").args(["--chap", "nocolon"]), "USER:SECRET");
    fails_with(
        pvd().args([
            "iscsi",
            "info",
            "--portal",
            &t.addr().to_string(),
            "--iqn",
            "iqn.2026-01.org.pvd:nope",
            "--lun",
            "1",
        ]),
        "login failed",
    );
}
