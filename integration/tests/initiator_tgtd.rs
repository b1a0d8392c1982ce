//! pvd's iSCSI initiator against tgtd: discovery, logins (plain, CHAP, mutual CHAP, digests),
//! 256 MiB in transfers from 512 bytes to 16 MiB, libiscsi (QEMU) interop both ways, a matrix
//! of negotiated limits, and reconnects under a QD32 write stream.

mod initiator_common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use initiator_common::*;
use iscsi_initiator::{discover, ChapSecret, IscsiError, Session};
use pvd_integration::sparse_file;
use pvd_integration::tgtd::Tgtd;

const IQN: &str = "iqn.2026-01.org.pvd:initiator-test";
/// tgtd's backing file is LUN 1 (LUN 0 is its controller).
const LUN: u64 = 1;

fn start(size: u64) -> (tempfile::TempDir, Tgtd) {
    let dir = tempfile::tempdir().unwrap();
    let backing = dir.path().join("lun.img");
    sparse_file(&backing, size);
    let t = Tgtd::start(IQN, &backing);
    (dir, t)
}

fn chap(user: &str, secret: &str) -> Option<ChapSecret> {
    ChapSecret::parse(&format!("{user}:{secret}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_and_logins() {
    let (_dir, t) = start(64 << 20);
    let targets = discover(&config(t.addr(), "")).await.unwrap();
    assert!(
        targets.iter().any(|d| d.name == IQN
            && d.addresses
                .iter()
                .any(|a| a.port == Some(t.port) && a.host == "127.0.0.1")),
        "discovery lists the target and its portal: {targets:?}"
    );

    // Plain login.
    let s = Session::connect(config(t.addr(), IQN)).await.unwrap();
    let inq = s.inquiry(LUN).await.unwrap();
    assert_eq!(inq.device_type, 0);
    let cap = s.read_capacity(LUN).await.unwrap();
    assert_eq!(cap.bytes(), 64 << 20);
    assert!(s.report_luns().await.unwrap().contains(&LUN));
    s.test_unit_ready(LUN).await.unwrap();
    s.ping().await.unwrap();
    let p = s.params();
    assert!(p.immediate_data);
    assert_eq!(p.max_recv_data_segment_length, 256 * 1024);
    s.lun_reset(LUN).await.unwrap();
    s.abort_task(LUN, 0x7777_0000).await.unwrap();
    s.test_unit_ready(LUN).await.unwrap();
    let blocks = s.read_capacity(LUN).await.unwrap().blocks;
    match s.read(LUN, blocks, 1).await {
        Err(IscsiError::CheckCondition { sense_key, .. }) => {
            assert_eq!(sense_key, iscsi_proto::scsi::SenseKey::ILLEGAL_REQUEST)
        }
        other => panic!("ILLEGAL REQUEST expected, got {other:?}"),
    }
    s.logout().await.unwrap();

    // One-way CHAP.
    t.tgtadm(&[
        "--op",
        "new",
        "--mode",
        "account",
        "--user",
        "alice",
        "--password",
        "alice-secret-1",
    ]);
    t.tgtadm(&[
        "--op", "bind", "--mode", "account", "--tid", "1", "--user", "alice",
    ]);
    let mut c = config(t.addr(), IQN);
    c.chap = chap("alice", "alice-secret-1");
    let s = Session::connect(c.clone()).await.unwrap();
    write_read_verify(
        &s,
        LUN,
        0,
        Arc::new(random_bytes(1 << 20, 1)),
        &[4096, 65536],
        8,
    )
    .await;
    s.logout().await.unwrap();
    let mut bad = c.clone();
    bad.chap = chap("alice", "wrong-secret-9");
    assert!(matches!(
        Session::connect(bad).await,
        Err(IscsiError::Login(_))
    ));
    let mut none = c.clone();
    none.chap = None;
    assert!(Session::connect(none).await.is_err(), "CHAP is required");

    // Mutual CHAP.
    t.tgtadm(&[
        "--op",
        "new",
        "--mode",
        "account",
        "--user",
        "tgt",
        "--password",
        "target-secret-2",
    ]);
    t.tgtadm(&[
        "--op",
        "bind",
        "--mode",
        "account",
        "--tid",
        "1",
        "--user",
        "tgt",
        "--outgoing",
    ]);
    let mut m = c.clone();
    m.mutual_chap = chap("tgt", "target-secret-2");
    let s = Session::connect(m.clone()).await.unwrap();
    s.test_unit_ready(LUN).await.unwrap();
    s.logout().await.unwrap();
    let mut m_bad = m.clone();
    m_bad.mutual_chap = chap("tgt", "not-the-secret");
    assert!(
        Session::connect(m_bad).await.is_err(),
        "a target that cannot prove itself is refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digests() {
    let (_dir, t) = start(64 << 20);
    t.set_param("HeaderDigest", "CRC32C");
    t.set_param("DataDigest", "CRC32C");
    let mut c = config(t.addr(), IQN);
    c.header_digest = true;
    c.data_digest = true;
    let s = Session::connect(c).await.unwrap();
    let p = s.params();
    assert_eq!(p.header_digest, iscsi_proto::text::DigestKind::Crc32c);
    assert_eq!(p.data_digest, iscsi_proto::text::DigestKind::Crc32c);
    write_read_verify(&s, LUN, 0, Arc::new(random_bytes(24 << 20, 2)), SIZES, 16).await;
    s.logout().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_transfers_and_libiscsi() {
    let (dir, t) = start(320 << 20);
    let s = Session::connect(config(t.addr(), IQN)).await.unwrap();
    let start = Instant::now();
    write_read_verify(&s, LUN, 0, Arc::new(random_bytes(256 << 20, 3)), SIZES, 16).await;
    eprintln!("256 MiB written and read back in {:?}", start.elapsed());
    libiscsi_both_ways(&s, LUN, &t.url(), dir.path(), 32 << 20).await;
    s.logout().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negotiation_matrix() {
    let (_dir, t) = start(64 << 20);
    // (MaxRecvDataSegmentLength, FirstBurstLength, MaxBurstLength, ImmediateData, InitialR2T,
    //  MaxOutstandingR2T)
    let cases: &[(&str, &str, &str, &str, &str, &str)] = &[
        ("512", "512", "512", "Yes", "No", "1"),
        ("512", "65536", "262144", "No", "Yes", "1"),
        ("8192", "65536", "262144", "Yes", "Yes", "1"),
        ("8192", "16384", "65536", "No", "No", "4"),
        ("262144", "262144", "1048576", "Yes", "No", "16"),
        ("262144", "4096", "16776192", "Yes", "Yes", "8"),
        ("4096", "262144", "131072", "No", "No", "2"),
    ];
    for (i, &(mrdsl, fbl, mbl, imm, ir2t, mor2t)) in cases.iter().enumerate() {
        t.set_param("MaxRecvDataSegmentLength", mrdsl);
        t.set_param("MaxXmitDataSegmentLength", mrdsl);
        t.set_param("FirstBurstLength", fbl);
        t.set_param("MaxBurstLength", mbl);
        t.set_param("ImmediateData", imm);
        t.set_param("InitialR2T", ir2t);
        t.set_param("MaxOutstandingR2T", mor2t);
        let s = Session::connect(config(t.addr(), IQN)).await.unwrap();
        let p = s.params();
        eprintln!(
            "case {i}: send {} recv {} FBL {} MBL {} Imm {} IR2T {} MaxOR2T {}",
            p.max_send_data_segment_length,
            p.max_recv_data_segment_length,
            p.first_burst_length,
            p.max_burst_length,
            p.immediate_data,
            p.initial_r2t,
            p.max_outstanding_r2t
        );
        assert_eq!(
            p.max_send_data_segment_length,
            mrdsl.parse::<u32>().unwrap()
        );
        assert_eq!(p.immediate_data, imm == "Yes");
        assert_eq!(p.initial_r2t, ir2t == "Yes");
        let data = Arc::new(random_bytes(6 << 20, 100 + i as u64));
        write_read_verify(
            &s,
            LUN,
            (i as u64) << 20,
            data,
            &[512, 4096, 1536, 65536, 300 * 512, 1 << 20, 3 << 20],
            8,
        )
        .await;
        s.logout().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_under_write_stream() {
    let (_dir, t) = start(128 << 20);
    let proxy = Proxy::start(t.addr()).await;
    let mut c = config(proxy.addr, IQN);
    c.replacement_timeout = Duration::from_secs(60);
    let s = Session::connect(c).await.unwrap();
    writes_survive_two_cuts(&s, LUN, &proxy).await;

    // Without a way back, commands fail after the replacement timeout.
    let mut c = config(proxy.addr, IQN);
    c.replacement_timeout = Duration::from_secs(2);
    let s = Session::connect(c).await.unwrap();
    s.test_unit_ready(LUN).await.unwrap();
    proxy.refuse(true);
    proxy.cut();
    let started = Instant::now();
    let r = s.test_unit_ready(LUN).await;
    assert!(
        matches!(r, Err(IscsiError::ReplacementTimeout(_))),
        "got {r:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tgtd_restart_under_write_stream() {
    let dir = tempfile::tempdir().unwrap();
    let backing = dir.path().join("lun.img");
    sparse_file(&backing, 128 << 20);
    let t = Tgtd::start(IQN, &backing);
    let port = t.port;
    let addr = t.addr();
    let slot = std::sync::Mutex::new(Some(t));
    let s = Session::connect(config(addr, IQN)).await.unwrap();
    let g0 = s.connection_generation();
    writes_survive(&s, LUN, 1000, || async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        // Kill tgtd (SIGKILL) mid-stream, wait, start a new one on the same port and file.
        drop(slot.lock().unwrap().take());
        tokio::time::sleep(Duration::from_millis(700)).await;
        let b = backing.clone();
        let t2 = tokio::task::spawn_blocking(move || Tgtd::start_on(IQN, &b, port))
            .await
            .unwrap();
        *slot.lock().unwrap() = Some(t2);
    })
    .await;
    assert!(
        s.connection_generation() > g0,
        "the session logged in again"
    );
}
