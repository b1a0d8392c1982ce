//! Data that `pvd target` acknowledged through SYNCHRONIZE CACHE, or wrote with FUA, survives
//! `kill -9` of the target: a restarted target serves it back. An aborted write is over before
//! its task-management answer, so it cannot land after a newer write.

mod target_common;

use bytes::Bytes;
use iscsi_proto::pdu::{Lun, Pdu, TaskMgmtRequest, TmfFunction, TmfResponse};
use iscsi_proto::scsi::build;
use pvd_integration::{require_tool, run_ok, sparse_file};
use std::process::Command;
use std::time::{Duration, Instant};
use target_common::raw::Raw;
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

/// SAM-5 section 7.2 / RFC 7143 section 11.5: once a task management function is answered
/// FUNCTION COMPLETE, the commands it aborted have no more effect on the medium. With a disk
/// model of 400 ms per command, a WRITE already on an I/O thread holds the answer until its
/// medium access is over (so an initiator's next write to the same blocks cannot be overtaken
/// by the aborted one).
fn tmf_answers_after_the_aborted_write_is_done(function: TmfFunction) {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("lun.img");
    sparse_file(&img, 16 << 20);
    let t = PvdTarget::start(&[&img], &["--emulate-disk", "latency_us=400000,mbps=100"]);
    let mut r = Raw::login(t.addr());
    let write = build::write10(0, 8, false);
    let itt = r.scsi(&write, 4096, false, true, Bytes::from(vec![0xa5; 4096]));
    // Let the WRITE reach the disk model before aborting it.
    std::thread::sleep(Duration::from_millis(100));
    let asked = Instant::now();
    let tmf_itt = r.itt;
    r.itt += 1;
    let referenced_task_tag = if function == TmfFunction::ABORT_TASK {
        itt
    } else {
        u32::MAX
    };
    r.send(&Pdu::TaskMgmtRequest(TaskMgmtRequest {
        immediate: true,
        function,
        lun: Lun::default(),
        itt: tmf_itt,
        referenced_task_tag,
        cmd_sn: r.cmd_sn,
        ref_cmd_sn: r.cmd_sn.wrapping_sub(1),
        ..Default::default()
    }));
    loop {
        match r.recv_within(Duration::from_secs(5)) {
            Some(Pdu::TaskMgmtResponse(resp)) if resp.itt == tmf_itt => {
                assert_eq!(resp.response, TmfResponse::FUNCTION_COMPLETE, "{resp:?}");
                break;
            }
            Some(Pdu::ScsiResponse(resp)) if resp.itt == itt => {
                panic!("the aborted WRITE answered: {resp:?}")
            }
            Some(Pdu::NopIn(_)) => {}
            other => panic!("no answer to {function:?}: {other:?}"),
        }
    }
    let waited = asked.elapsed();
    assert!(
        waited >= Duration::from_millis(200),
        "{function:?} answered after {waited:?}, while the aborted WRITE still had ~300 ms of disk time"
    );
    // The session goes on: the next command is served.
    assert!(r.inquiry_works());
}

#[test]
fn abort_task_answers_after_the_aborted_write_is_done() {
    tmf_answers_after_the_aborted_write_is_done(TmfFunction::ABORT_TASK);
}

#[test]
fn lun_reset_answers_after_the_aborted_write_is_done() {
    tmf_answers_after_the_aborted_write_is_done(TmfFunction::LOGICAL_UNIT_RESET);
}

/// RFC 7143 section 6.3.1: a login with the ISID of a session whose connection dropped
/// reinstates it. The old session's WRITE still on an I/O thread (400 ms disk model) ends
/// before the new session serves a command, so it cannot land after the new session's writes.
#[test]
fn reinstatement_waits_for_the_dropped_session_writes() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("lun.img");
    sparse_file(&img, 16 << 20);
    let t = PvdTarget::start(&[&img], &["--emulate-disk", "latency_us=400000,mbps=100"]);
    let isid = [0x80, 0x12, 0x34, 0x56, 0x78, 0x9a];
    let mut old = Raw::login_with(t.addr(), Some(isid), false);
    let write = build::write10(0, 8, false);
    old.scsi(&write, 4096, false, true, Bytes::from(vec![0x5a; 4096]));
    // Let the WRITE reach the disk model, then drop the connection.
    std::thread::sleep(Duration::from_millis(100));
    old.s.shutdown(std::net::Shutdown::Both).unwrap();
    drop(old);
    let asked = Instant::now();
    let mut new = Raw::login_with(t.addr(), Some(isid), false);
    assert!(new.inquiry_works());
    let waited = asked.elapsed();
    assert!(
        waited >= Duration::from_millis(200),
        "the reinstated session answered after {waited:?}, while the dropped session's WRITE \
         still had ~300 ms of disk time"
    );
}
