//! Session-level behaviour of `pvd target` seen from a raw socket: reinstatement on the same
//! ISID, CRC32C header and data digests (also on answers sent by I/O threads), NOP-In pings
//! (answered, and unanswered), many concurrent sessions.

mod target_common;

use bytes::Bytes;
use iscsi_proto::pdu::{NopOut, Pdu};
use pvd_integration::{pvd, random_file, run_fails, run_ok, sparse_file};
use std::time::Duration;
use target_common::raw::Raw;
use target_common::{PvdTarget, IQN};

fn target(extra: &[&str]) -> (tempfile::TempDir, PvdTarget) {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("lun.img");
    sparse_file(&img, 16 << 20);
    let t = PvdTarget::start(&[&img], extra);
    (dir, t)
}

#[test]
fn login_with_the_same_isid_reinstates_the_session() {
    let (_d, t) = target(&["--nop-interval", "0"]);
    let isid = [0x80, 1, 2, 3, 4, 5];
    let mut old = Raw::login_with(t.addr(), Some(isid), false);
    assert!(old.inquiry_works());
    let mut other = Raw::login_with(t.addr(), Some([0x80, 1, 2, 3, 4, 6]), false);
    let mut new = Raw::login_with(t.addr(), Some(isid), false);
    assert!(new.inquiry_works());
    assert!(
        old.closed(),
        "the reinstated session's connection stayed open"
    );
    assert!(
        other.inquiry_works(),
        "a session with another ISID was dropped"
    );
}

#[test]
fn header_and_data_digests() {
    let (_d, t) = target(&["--nop-interval", "0"]);
    let mut r = Raw::login_with(t.addr(), None, true);
    assert!(r.nop_works());
    assert!(r.inquiry_works());
    // A write with immediate data and a read back, both digested.
    let data = Bytes::from((0..4096u32).map(|i| (i * 7) as u8).collect::<Vec<u8>>());
    let itt = r.scsi(
        &[0x2a, 0, 0, 0, 0, 16, 0, 0, 8, 0],
        4096,
        false,
        true,
        data.clone(),
    );
    match r.recv() {
        Some(Pdu::ScsiResponse(resp)) => assert!(resp.itt == itt && resp.status.0 == 0, "{resp:?}"),
        other => panic!("no response to WRITE: {other:?}"),
    }
    let got = r.read10(16, 8);
    assert_eq!(&got[..], &data[..]);
    // A PDU whose header digest is wrong ends the connection.
    let mut bytes = Pdu::NopOut(NopOut {
        immediate: true,
        itt: 99,
        ttt: 0xffff_ffff,
        ..Default::default()
    })
    .to_bytes(r.digests)
    .to_vec();
    bytes[48] ^= 0xff;
    r.send_raw(&bytes);
    assert!(r.closed());
}

/// Answers that I/O threads send themselves (every command on the pool engine; every command
/// behind the disk model) carry correct digests, one at a time and 32 at once.
#[test]
fn digests_on_answers_sent_by_io_threads() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.bin");
    random_file(&input, 3 << 20, 7);
    for extra in [
        &["--io-engine", "pool"][..],
        &["--emulate-disk", "latency_us=20,mbps=2000"][..],
        // The event loop polls its sockets between commands.
        &[
            "--emulate-disk",
            "latency_us=20,mbps=2000",
            "--poll-us",
            "200",
        ][..],
    ] {
        let (_d, t) = target(&[&["--nop-interval", "0"][..], extra].concat());
        let portal = t.addr().to_string();
        let common = |c: &mut std::process::Command| {
            c.args(["--portal", &portal, "--iqn", IQN, "--lun", "0"])
                .args(["--header-digest", "--data-digest"]);
        };
        let mut w = pvd();
        w.args(["iscsi", "write"]);
        common(&mut w);
        run_ok(w.args(["--offset", "4096", "--input"]).arg(&input));
        let output = dir.path().join("out.bin");
        let mut r = pvd();
        r.args(["iscsi", "read"]);
        common(&mut r);
        run_ok(
            r.args(["--offset", "4096", "--length", &(3u32 << 20).to_string()])
                .arg("--output")
                .arg(&output),
        );
        assert!(
            std::fs::read(&input).unwrap() == std::fs::read(&output).unwrap(),
            "data read back with digests differs ({extra:?})"
        );
        for rw in ["randwrite", "randread"] {
            let mut b = pvd();
            b.args(["iscsi", "bench"]);
            common(&mut b);
            let out = run_ok(b.args(["--rw", rw, "--bs", "64K", "--qd", "32", "--count", "400"]));
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("count=400"), "{extra:?} {rw}: {text}");
        }
    }
}

#[test]
fn nop_in_pings_and_dead_initiators() {
    let (_d, t) = target(&["--nop-interval", "1", "--nop-timeout", "2"]);
    let mut r = Raw::login(t.addr());
    // Answer the pings for a while: the connection stays up.
    let mut pings = 0;
    while pings < 2 {
        match r.recv_within(Duration::from_secs(5)) {
            Some(Pdu::NopIn(n)) if n.itt == 0xffff_ffff && n.ttt != 0xffff_ffff => {
                pings += 1;
                r.send(&Pdu::NopOut(NopOut {
                    immediate: true,
                    lun: n.lun,
                    itt: 0xffff_ffff,
                    ttt: n.ttt,
                    cmd_sn: r.cmd_sn,
                    ..Default::default()
                }));
            }
            other => panic!("expected a NOP-In ping, got {other:?}"),
        }
    }
    assert!(r.inquiry_works());
    // Stop answering: the target drops the connection.
    assert!(r.closed(), "a silent initiator was not dropped");
}

#[test]
fn many_concurrent_sessions() {
    let (_d, t) = target(&["--nop-interval", "0"]);
    let addr = t.addr();
    let workers: Vec<_> = (0..16)
        .map(|n| {
            std::thread::spawn(move || {
                let mut r = Raw::login(addr);
                // 8 pipelined writes then 8 reads of this session's own 4 KiB blocks.
                let lba = n * 64;
                for k in 0..8u32 {
                    let at = (lba + k * 8).to_be_bytes();
                    let data = Bytes::from(vec![(n * 8 + k) as u8; 4096]);
                    r.scsi(
                        &[0x2a, 0, at[0], at[1], at[2], at[3], 0, 0, 8, 0],
                        4096,
                        false,
                        true,
                        data,
                    );
                }
                let mut done = 0;
                while done < 8 {
                    match r.recv() {
                        Some(Pdu::ScsiResponse(resp)) => {
                            assert_eq!(resp.status.0, 0);
                            done += 1;
                        }
                        other => panic!("unexpected {other:?}"),
                    }
                }
                for k in 0..8u32 {
                    let got = r.read10(lba + k * 8, 8);
                    assert!(
                        got.iter().all(|&b| b == (n * 8 + k) as u8),
                        "session {n} block {k}"
                    );
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
}

/// `--poll-us` above its limit is refused before the target starts, without a panic.
#[test]
fn poll_budget_above_the_limit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let lun = dir.path().join("lun.img");
    sparse_file(&lun, 1 << 20);
    let err = run_fails(
        pvd()
            .args(["target", "--listen", "127.0.0.1:0", "--iqn", IQN, "--lun"])
            .arg(&lun)
            .args(["--poll-us", "20000"]),
    );
    assert!(err.contains("poll_us 20000 is above 10000"), "{err}");
}
