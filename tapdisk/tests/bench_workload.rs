//! The load generator against real NBD servers (pvd's own NBD frontend on a memory backend, and
//! nbdkit's memory plugin) and against the local disk-model baseline: byte counts, queue depth,
//! data read back, and the disk model's timing.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pvd::bench::service_time::{DiskEmulation, ServiceTimeModel, SpindleModel};
use pvd::bench::target_local::LocalFileTarget;
use pvd::bench::workload::{random_pattern, run_workload_with_pattern, AccessPattern};
use pvd::bench::{run_workload, NbdConnection, NbdTarget, Op, WorkloadSpec, WorkloadTarget};
use pvd::nbd::{MemBackend, NbdConfig, NbdServer};

/// pvd's NBD server on a memory backend, on a thread of its own; stops when dropped.
struct PvdNbd {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PvdNbd {
    fn tcp(size: u64) -> (PvdNbd, NbdTarget) {
        let std_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = std_listener.local_addr().unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
                let server = NbdServer::new(Arc::new(MemBackend::new(size)), NbdConfig::default());
                server
                    .serve_tcp(listener, async {
                        let _ = rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        (
            PvdNbd {
                stop: Some(tx),
                thread: Some(thread),
            },
            NbdTarget::tcp(addr.to_string()),
        )
    }

    fn unix(size: u64, path: std::path::PathBuf) -> (PvdNbd, NbdTarget) {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let p = path.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = pvd::nbd::bind_unix(&p).unwrap();
                ready_tx.send(()).unwrap();
                let server = NbdServer::new(Arc::new(MemBackend::new(size)), NbdConfig::default());
                server
                    .serve_unix(listener, async {
                        let _ = rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        ready_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        (
            PvdNbd {
                stop: Some(tx),
                thread: Some(thread),
            },
            NbdTarget::unix(path),
        )
    }
}

impl Drop for PvdNbd {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `nbdkit memory` on a free port; killed when dropped.
struct Nbdkit(Child);

impl Nbdkit {
    fn memory(size: &str) -> (Nbdkit, NbdTarget) {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let child = Command::new("nbdkit")
            .args([
                "-f",
                "--exit-with-parent",
                "-i",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "memory",
            ])
            .arg(format!("size={size}"))
            .stdout(Stdio::null())
            .spawn()
            .expect("nbdkit is installed (scripts/install-peers)");
        (Nbdkit(child), NbdTarget::tcp(format!("127.0.0.1:{port}")))
    }
}

impl Drop for Nbdkit {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Writes `bytes` sequentially at `qd`, then checks the counts and reads every block back.
fn write_then_verify(target: &NbdTarget, bs: u32, qd: usize, bytes: u64) {
    let pattern = random_pattern(bs as usize, 42);
    let spec = WorkloadSpec::sequential(Op::Write, bs, qd, bytes);
    let progressed = std::sync::atomic::AtomicU64::new(0);
    let m = run_workload_with_pattern(target, &spec, pattern.clone(), &|b| {
        progressed.fetch_add(b, std::sync::atomic::Ordering::Relaxed);
    })
    .unwrap();
    assert_eq!(m.bytes, bytes);
    assert_eq!(m.ops, bytes / u64::from(bs));
    assert_eq!(m.latencies_ns.len() as u64, m.ops);
    assert_eq!(progressed.into_inner(), bytes);
    assert!(m.mb_per_s() > 0.0);

    let mut conn = NbdConnection::connect_with_retry(target, Duration::from_secs(30)).unwrap();
    let mut buf = vec![0u8; bs as usize];
    for block in 0..bytes / u64::from(bs) {
        conn.read_at(block * u64::from(bs), &mut buf).unwrap();
        assert!(
            buf[..] == pattern[..bs as usize],
            "block {block} did not read back"
        );
    }
    // Beyond what was written the memory export is still zero.
    conn.read_at(bytes, &mut buf).unwrap();
    assert!(buf.iter().all(|&b| b == 0));
    conn.disconnect().unwrap();

    let r = run_workload(
        target,
        &WorkloadSpec::sequential(Op::Read, bs, qd, bytes),
        &|_| {},
    )
    .unwrap();
    assert_eq!((r.bytes, r.ops), (bytes, bytes / u64::from(bs)));
}

#[test]
fn pvd_nbd_server_tcp_qd32_and_qd1() {
    let (_server, target) = PvdNbd::tcp(64 << 20);
    write_then_verify(&target, 4096, 32, 4 << 20);
    write_then_verify(&target, 64 << 10, 1, 8 << 20);
}

#[test]
fn pvd_nbd_server_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, target) = PvdNbd::unix(16 << 20, dir.path().join("nbd.sock"));
    write_then_verify(&target, 16 << 10, 8, 2 << 20);
}

#[test]
fn nbdkit_memory_qd32_and_wrapping() {
    let (_nbdkit, target) = Nbdkit::memory("8M");
    write_then_verify(&target, 4096, 32, 4 << 20);
    write_then_verify(&target, 1 << 20, 4, 4 << 20);
    // A budget beyond the export wraps around inside it.
    let m = run_workload(
        &target,
        &WorkloadSpec::sequential(Op::Write, 1 << 20, 2, 20 << 20),
        &|_| {},
    )
    .unwrap();
    assert_eq!(m.ops, 20);
}

#[test]
fn time_budget_stops_the_point() {
    let (_nbdkit, target) = Nbdkit::memory("64M");
    let spec = WorkloadSpec {
        op: Op::Write,
        block_size: 4096,
        queue_depth: 4,
        bytes: None,
        duration: Some(Duration::from_millis(300)),
        pattern: AccessPattern::Random { seed: 7 },
        region: Some(1 << 20),
    };
    let m = run_workload(&target, &spec, &|_| {}).unwrap();
    assert!(m.ops > 10, "{m:?}");
    assert!(
        m.elapsed >= Duration::from_millis(300) && m.elapsed < Duration::from_secs(10),
        "{:?}",
        m.elapsed
    );
}

#[test]
fn local_target_reads_back_and_follows_the_disk_model() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.img");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(4 << 20)
        .unwrap();

    // Without a model: plain pread/pwrite at QD8, data lands in the file.
    let plain = LocalFileTarget::new(&path, None);
    let pattern = random_pattern(8192, 9);
    let m = run_workload_with_pattern(
        &plain,
        &WorkloadSpec::sequential(Op::Write, 8192, 8, 1 << 20),
        pattern.clone(),
        &|_| {},
    )
    .unwrap();
    assert_eq!((m.bytes, m.ops), (1 << 20, 128));
    let data = std::fs::read(&path).unwrap();
    for block in data[..1 << 20].chunks(8192) {
        assert!(block == &pattern[..]);
    }
    assert!(data[1 << 20..].iter().all(|&b| b == 0));

    // 1 ms per command, one spindle: 40 commands take >= 40 ms whatever the queue depth, and
    // 1 MB at 100 MB/s adds 10 ms.
    let spec = DiskEmulation {
        latency_us: 1000,
        mbps: 100.0,
    };
    for qd in [1, 8] {
        let model: Arc<dyn ServiceTimeModel> = Arc::new(SpindleModel::new(spec));
        let t = LocalFileTarget::new(&path, Some(model));
        let m = run_workload(
            &t,
            &WorkloadSpec::sequential(Op::Read, 25_000, qd, 1_000_000),
            &|_| {},
        )
        .unwrap();
        assert_eq!(m.ops, 40);
        assert!(
            m.elapsed >= Duration::from_millis(50),
            "QD{qd}: {:?}",
            m.elapsed
        );
        assert!(
            m.elapsed < Duration::from_millis(500),
            "QD{qd}: {:?}",
            m.elapsed
        );
        if qd == 1 {
            // Each command alone takes 1 ms + 250 µs.
            let p50 = m.percentiles_us(&[50.0])[0];
            assert!(p50 >= 1250.0, "p50 {p50} us");
        }
    }
}

#[test]
fn errors_name_the_target() {
    // A server that greets with the wrong magic.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        use std::io::Write;
        let (mut s, _) = listener.accept().unwrap();
        let _ = s.write_all(b"NOTNBD!!IHAVEOPT\x00\x03");
    });
    let target = NbdTarget::tcp(addr.to_string());
    let started = Instant::now();
    let err = match target.open(1, 4096, random_pattern(4096, 1)) {
        Ok(_) => panic!("accepted a server that is not NBD"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains(&addr.to_string()), "{err}");
    assert!(err.contains("NBDMAGIC"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    server.join().unwrap();
}
