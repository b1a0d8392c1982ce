//! pvd's iSCSI initiator against pvd's own target (`pvd target`): discovery, logins (plain,
//! CHAP, mutual CHAP, digests), 256 MiB in transfers from 512 bytes to 16 MiB, libiscsi (QEMU)
//! interop both ways, and reconnects under a QD32 write stream.

mod initiator_common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use initiator_common::*;
use iscsi_initiator::{discover, ChapSecret, IscsiError, Session};
use pvd_integration::{free_port, pvd, sparse_file, wait_for_port, Proc};

const IQN: &str = "iqn.2026-01.org.pvd:initiator-own-target";
/// pvd's target numbers LUNs from 0.
const LUN: u64 = 0;

struct PvdTarget {
    _dir: tempfile::TempDir,
    _proc: Proc,
    addr: SocketAddr,
}

impl PvdTarget {
    fn start(size: u64, extra: &[&str]) -> PvdTarget {
        let dir = tempfile::tempdir().unwrap();
        let backing = dir.path().join("lun.img");
        sparse_file(&backing, size);
        let port = free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let proc = Proc::spawn(
            "pvd target",
            pvd()
                .arg("target")
                .arg("--listen")
                .arg(addr.to_string())
                .arg("--iqn")
                .arg(IQN)
                .arg("--lun")
                .arg(&backing)
                .args(extra),
        );
        wait_for_port(addr, Duration::from_secs(20));
        PvdTarget {
            _dir: dir,
            _proc: proc,
            addr,
        }
    }

    fn url(&self) -> String {
        format!("iscsi://{}/{IQN}/{LUN}", self.addr)
    }
}

fn chap(s: &str) -> Option<ChapSecret> {
    ChapSecret::parse(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_and_plain_login() {
    let t = PvdTarget::start(64 << 20, &[]);
    let targets = discover(&config(t.addr, "")).await.unwrap();
    assert!(
        targets.iter().any(|d| d.name == IQN),
        "discovery lists the target: {targets:?}"
    );
    let s = Session::connect(config(t.addr, IQN)).await.unwrap();
    assert_eq!(s.inquiry(LUN).await.unwrap().device_type, 0);
    assert_eq!(s.read_capacity(LUN).await.unwrap().bytes(), 64 << 20);
    assert!(s.report_luns().await.unwrap().contains(&LUN));
    s.test_unit_ready(LUN).await.unwrap();
    s.ping().await.unwrap();
    write_read_verify(
        &s,
        LUN,
        0,
        Arc::new(random_bytes(8 << 20, 5)),
        &[512, 4096, 65536, 1 << 20],
        16,
    )
    .await;
    // Task management: LUN RESET, ABORT TASK of a task that does not exist.
    s.lun_reset(LUN).await.unwrap();
    s.abort_task(LUN, 0x7777_0000).await.unwrap();
    s.test_unit_ready(LUN).await.unwrap();
    // COMPARE AND WRITE, WRITE SAME (unmap), UNMAP.
    let a = Bytes::from(random_bytes(1024, 11));
    let b = Bytes::from(random_bytes(1024, 12));
    s.write(LUN, 100, a.clone(), false).await.unwrap();
    s.compare_and_write(LUN, 100, a.clone(), b.clone(), false)
        .await
        .unwrap();
    assert_eq!(s.read(LUN, 100, 2).await.unwrap(), b);
    match s
        .compare_and_write(LUN, 100, a.clone(), a.clone(), false)
        .await
    {
        Err(IscsiError::CheckCondition { sense_key, .. }) => {
            assert_eq!(sense_key, iscsi_proto::scsi::SenseKey::MISCOMPARE)
        }
        other => panic!("miscompare expected, got {other:?}"),
    }
    s.write_same(LUN, 100, 2, true).await.unwrap();
    assert!(s.read(LUN, 100, 2).await.unwrap().iter().all(|&x| x == 0));
    s.write(LUN, 200, a.clone(), true).await.unwrap();
    s.unmap(LUN, &[(200, 2)]).await.unwrap();
    // A read past the end is a typed CHECK CONDITION (ILLEGAL REQUEST).
    let blocks = s.read_capacity(LUN).await.unwrap().blocks;
    match s.read(LUN, blocks, 1).await {
        Err(IscsiError::CheckCondition { sense_key, .. }) => {
            assert_eq!(sense_key, iscsi_proto::scsi::SenseKey::ILLEGAL_REQUEST)
        }
        other => panic!("ILLEGAL REQUEST expected, got {other:?}"),
    }
    s.logout().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chap_logins() {
    let t = PvdTarget::start(
        16 << 20,
        &[
            "--chap",
            "alice:alice-secret-1",
            "--chap-mutual",
            "tgt:target-secret-2",
        ],
    );
    let mut c = config(t.addr, IQN);
    c.chap = chap("alice:alice-secret-1");
    let s = Session::connect(c.clone()).await.unwrap();
    s.test_unit_ready(LUN).await.unwrap();
    s.logout().await.unwrap();
    let mut m = c.clone();
    m.mutual_chap = chap("tgt:target-secret-2");
    let s = Session::connect(m.clone()).await.unwrap();
    s.test_unit_ready(LUN).await.unwrap();
    s.logout().await.unwrap();
    let mut bad = c.clone();
    bad.chap = chap("alice:wrong-secret-9");
    assert!(matches!(
        Session::connect(bad).await,
        Err(IscsiError::Login(_))
    ));
    let mut m_bad = m.clone();
    m_bad.mutual_chap = chap("tgt:not-the-secret");
    assert!(Session::connect(m_bad).await.is_err());
    let mut none = c.clone();
    none.chap = None;
    assert!(Session::connect(none).await.is_err(), "CHAP is required");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digests() {
    let t = PvdTarget::start(64 << 20, &[]);
    let mut c = config(t.addr, IQN);
    c.header_digest = true;
    c.data_digest = true;
    let s = Session::connect(c).await.unwrap();
    let p = s.params();
    assert_eq!(p.header_digest, iscsi_proto::text::DigestKind::Crc32c);
    assert_eq!(p.data_digest, iscsi_proto::text::DigestKind::Crc32c);
    write_read_verify(&s, LUN, 0, Arc::new(random_bytes(24 << 20, 6)), SIZES, 16).await;
    s.logout().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_transfers_and_libiscsi() {
    let t = PvdTarget::start(320 << 20, &[]);
    let dir = tempfile::tempdir().unwrap();
    let s = Session::connect(config(t.addr, IQN)).await.unwrap();
    let start = Instant::now();
    write_read_verify(&s, LUN, 0, Arc::new(random_bytes(256 << 20, 7)), SIZES, 16).await;
    eprintln!("256 MiB written and read back in {:?}", start.elapsed());
    libiscsi_both_ways(&s, LUN, &t.url(), dir.path(), 32 << 20).await;
    s.logout().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_under_write_stream() {
    let t = PvdTarget::start(128 << 20, &[]);
    let proxy = Proxy::start(t.addr).await;
    let s = Session::connect(config(proxy.addr, IQN)).await.unwrap();
    writes_survive_two_cuts(&s, LUN, &proxy).await;
}
