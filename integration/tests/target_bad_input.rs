//! `pvd target` facing a hostile or broken initiator over a raw TCP socket: malformed PDUs,
//! lying lengths, oversized segments, CmdSN outside the window, garbage in login, an initiator
//! that vanishes mid-transfer. Each case must end in a Reject or a closed connection, never a
//! crash, and a session opened beforehand must keep working.

mod target_common;

use bytes::Bytes;
use iscsi_proto::pdu::{DataOut, LoginRequest, Opcode, Pdu, RejectReason, Stage};
use pvd_integration::sparse_file;
use std::time::Duration;
use target_common::raw::Raw;
use target_common::{PvdTarget, INITIATOR};

fn setup() -> (tempfile::TempDir, PvdTarget, Raw) {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("lun.img");
    sparse_file(&img, 16 << 20);
    let t = PvdTarget::start(&[&img], &["--nop-interval", "0"]);
    let mut good = Raw::login(t.addr());
    assert!(good.inquiry_works());
    (dir, t, good)
}

fn still_fine(t: &mut PvdTarget, good: &mut Raw) {
    assert!(t.proc.child.try_wait().unwrap().is_none(), "target died");
    assert!(
        good.nop_works(),
        "the other session stopped answering NOP-Out"
    );
    assert!(
        good.inquiry_works(),
        "the other session stopped answering INQUIRY"
    );
    let mut fresh = Raw::login(t.addr());
    assert!(fresh.inquiry_works(), "a new session does not work");
}

#[test]
fn garbage_instead_of_login_closes() {
    let (_d, mut t, mut good) = setup();
    let mut r = Raw::connect(t.addr());
    r.send_raw(&[0x55u8; 300]);
    assert!(r.closed());
    let mut r = Raw::connect(t.addr());
    r.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    r.send_raw(&[0u8; 100]);
    assert!(r.closed());
    still_fine(&mut t, &mut good);
}

#[test]
fn garbage_login_text_is_refused() {
    let (_d, mut t, mut good) = setup();
    let mut r = Raw::connect(t.addr());
    r.send(&Pdu::LoginRequest(LoginRequest {
        transit: true,
        csg: Stage(1),
        nsg: Stage(3),
        isid: [0x80, 0, 0, 0, 0, 9],
        data: Bytes::from_static(b"\xff\xfe no key value here \x01\x02"),
        ..Default::default()
    }));
    match r.recv() {
        Some(Pdu::LoginResponse(resp)) => assert_ne!(resp.status.0, 0, "garbage login accepted"),
        None => {}
        Some(other) => panic!("unexpected answer {other:?}"),
    }
    assert!(r.closed());
    // A login to a target that does not exist.
    let mut r = Raw::connect(t.addr());
    r.send(&Pdu::LoginRequest(LoginRequest {
        transit: true,
        csg: Stage(1),
        nsg: Stage(3),
        isid: [0x80, 0, 0, 0, 0, 10],
        data: Bytes::from(
            format!("InitiatorName={INITIATOR}\0TargetName=iqn.nope:x\0").into_bytes(),
        ),
        ..Default::default()
    }));
    match r.recv() {
        Some(Pdu::LoginResponse(resp)) => assert_eq!(resp.status.0, 0x0203, "{resp:?}"),
        other => panic!("unexpected answer {other:?}"),
    }
    still_fine(&mut t, &mut good);
}

#[test]
fn oversized_and_lying_segments_close_the_connection() {
    let (_d, mut t, mut good) = setup();
    // DataSegmentLength far above the declared MaxRecvDataSegmentLength.
    let mut r = Raw::login(t.addr());
    let mut bhs = [0u8; 48];
    bhs[0] = Opcode::SCSI_COMMAND.0;
    bhs[1] = 0x80;
    bhs[5..8].copy_from_slice(&[0xff, 0xff, 0xff]);
    r.send_raw(&bhs);
    assert!(r.closed());
    // A header announcing 64 KiB of data followed by only a few bytes, then silence and close.
    let mut r = Raw::login(t.addr());
    let mut bhs = [0u8; 48];
    bhs[0] = Opcode::NOP_OUT.0 | 0x40;
    bhs[1] = 0x80;
    bhs[5..8].copy_from_slice(&[0x01, 0x00, 0x00]);
    bhs[16..20].copy_from_slice(&7u32.to_be_bytes());
    r.send_raw(&bhs);
    r.send_raw(b"short");
    drop(r);
    // An AHS length that runs past the header area.
    let mut r = Raw::login(t.addr());
    let mut bhs = vec![0u8; 48 + 8];
    bhs[0] = Opcode::SCSI_COMMAND.0;
    bhs[1] = 0x80;
    bhs[4] = 2;
    bhs[48..50].copy_from_slice(&0x4000u16.to_be_bytes());
    r.send_raw(&bhs);
    assert!(r.closed());
    // Data-Out claiming an offset past the command's Expected Data Transfer Length.
    let mut r = Raw::login(t.addr());
    let itt = r.scsi(
        &[0x2a, 0, 0, 0, 0, 0, 0, 0, 8, 0],
        4096,
        false,
        true,
        Bytes::new(),
    );
    match r.recv() {
        Some(Pdu::R2t(_)) => {}
        other => panic!("expected an R2T, got {other:?}"),
    }
    r.send(&Pdu::DataOut(DataOut {
        final_bit: true,
        itt,
        ttt: 0xffff_ffff,
        buffer_offset: 1 << 30,
        data: Bytes::from(vec![0u8; 512]),
        ..Default::default()
    }));
    assert!(r.closed());
    still_fine(&mut t, &mut good);
}

#[test]
fn unknown_opcode_is_rejected_and_the_connection_goes_on() {
    let (_d, mut t, mut good) = setup();
    let mut r = Raw::login(t.addr());
    let mut bhs = [0u8; 48];
    bhs[0] = 0x1c; // a vendor/unknown initiator opcode
    bhs[1] = 0x80;
    r.send_raw(&bhs);
    match r.recv() {
        Some(Pdu::Reject(rej)) => assert_eq!(rej.reason, RejectReason::COMMAND_NOT_SUPPORTED),
        other => panic!("expected a Reject, got {other:?}"),
    }
    assert!(r.inquiry_works());
    still_fine(&mut t, &mut good);
}

#[test]
fn cmdsn_outside_the_window_is_dropped() {
    let (_d, mut t, mut good) = setup();
    let mut r = Raw::login(t.addr());
    let expected = r.cmd_sn;
    // Far beyond MaxCmdSN, and behind ExpCmdSN: both dropped silently.
    r.cmd_sn = expected.wrapping_add(100_000);
    r.scsi(&[0, 0, 0, 0, 0, 0], 0, false, false, Bytes::new());
    r.cmd_sn = expected.wrapping_sub(5);
    r.scsi(&[0, 0, 0, 0, 0, 0], 0, false, false, Bytes::new());
    assert!(
        r.recv_within(Duration::from_millis(700)).is_none(),
        "out-of-window command answered"
    );
    r.cmd_sn = expected;
    assert!(r.inquiry_works());
    still_fine(&mut t, &mut good);
}

#[test]
fn initiator_vanishing_mid_transfer_leaves_nothing_stuck() {
    let (_d, mut t, mut good) = setup();
    for _ in 0..3 {
        let mut r = Raw::login(t.addr());
        // 1 MiB write, 4 KiB immediate, the rest solicited: answer half of the first R2T.
        let cdb = [0x2a, 0, 0, 0, 0, 0, 0, 0x08, 0x00, 0];
        let itt = r.scsi(&cdb, 1 << 20, false, true, Bytes::from(vec![7u8; 4096]));
        let r2t = match r.recv() {
            Some(Pdu::R2t(r2t)) => r2t,
            other => panic!("expected an R2T, got {other:?}"),
        };
        r.send(&Pdu::DataOut(DataOut {
            final_bit: false,
            itt,
            ttt: r2t.ttt,
            buffer_offset: r2t.buffer_offset,
            data: Bytes::from(vec![7u8; 8192]),
            ..Default::default()
        }));
        // Also a few reads in flight.
        for _ in 0..8 {
            r.scsi(
                &[0x28, 0, 0, 0, 0, 0, 0, 0, 128, 0],
                65536,
                true,
                false,
                Bytes::new(),
            );
        }
        drop(r);
    }
    still_fine(&mut t, &mut good);
    drop(good);
    let status = t
        .proc
        .terminate(Duration::from_secs(20))
        .expect("target did not stop on SIGTERM");
    assert!(status.success(), "target exited with {status}");
}

#[test]
fn announced_writes_that_never_send_data_are_bounded() {
    // 20 WRITEs of 16 MiB each whose data never comes: the target holds at most 256 MiB of
    // write buffers per connection and answers the rest TASK SET FULL instead of allocating.
    let (_d, mut t, mut good) = setup();
    let mut hostile = Raw::login(t.addr());
    for _ in 0..20 {
        hostile.scsi(
            &[0x2a, 0, 0, 0, 0, 0, 0, 0x80, 0, 0],
            16 << 20,
            false,
            true,
            Bytes::new(),
        );
    }
    let mut task_set_full = 0;
    while let Some(p) = hostile.recv_within(Duration::from_secs(3)) {
        if let Pdu::ScsiResponse(r) = p {
            assert_eq!(r.status.0, 0x28, "only TASK SET FULL answers: {r:?}");
            task_set_full += 1;
        }
    }
    assert_eq!(task_set_full, 4, "16 x 16 MiB fit the budget, 4 do not");
    still_fine(&mut t, &mut good);
}
