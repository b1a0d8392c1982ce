//! Is the load generator fast enough not to be the bottleneck? 4 KiB requests at QD32 against
//! `nbdkit memory` and against pvd's own NBD server on a memory backend, medians of three runs,
//! compared with `fio --ioengine=nbd` on the same server. Timing-dependent, so ignored by default:
//! `cargo test -p pvd --profile ci --test bench_generator_speed -- --ignored --nocapture`.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use pvd::bench::workload::AccessPattern;
use pvd::bench::{run_workload, NbdTarget, Op, WorkloadSpec};
use pvd::nbd::{MemBackend, NbdConfig, NbdServer};

struct Nbdkit(Child);

impl Drop for Nbdkit {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

fn fio_iops(port: u16, rw: &str, secs: u64) -> f64 {
    let out = Command::new("fio")
        .args([
            "--name=gen",
            "--ioengine=nbd",
            &format!("--uri=nbd://127.0.0.1:{port}/"),
            &format!("--rw={rw}"),
            "--bs=4k",
            "--iodepth=32",
            "--size=256M",
            "--time_based",
            &format!("--runtime={secs}"),
            "--output-format=json",
        ])
        .output()
        .expect("fio is installed");
    assert!(
        out.status.success(),
        "fio: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // fio may print notes before the JSON document.
    let text = String::from_utf8_lossy(&out.stdout);
    let json = &text[text.find('{').expect("fio JSON")..];
    let v: serde_json::Value = serde_json::from_str(json).expect("fio JSON");
    let job = &v["jobs"][0];
    let key = if rw.contains("read") { "read" } else { "write" };
    job[key]["iops"].as_f64().expect("iops")
}

fn compare(port: u16, server: &str) {
    let target = NbdTarget::tcp(format!("127.0.0.1:{port}"));
    let secs = 3;
    for (op, rw) in [(Op::Write, "write"), (Op::Read, "read")] {
        let ours: Vec<f64> = (0..3)
            .map(|_| {
                let spec = WorkloadSpec {
                    op,
                    block_size: 4096,
                    queue_depth: 32,
                    bytes: None,
                    duration: Some(Duration::from_secs(secs)),
                    pattern: AccessPattern::Sequential,
                    region: None,
                };
                run_workload(&target, &spec, &|_| {}).unwrap().iops()
            })
            .collect();
        let fio: Vec<f64> = (0..3).map(|_| fio_iops(port, rw, secs)).collect();
        let (o, f) = (median(ours.clone()), median(fio.clone()));
        println!(
            "{server}, 4K QD32 {rw}: pvd bench {o:.0} IOPS {ours:.0?}; fio nbd {f:.0} IOPS {fio:.0?}; ratio {:.2}",
            o / f
        );
        assert!(
            o > 0.5 * f,
            "generator much slower than fio: {o:.0} vs {f:.0}"
        );
    }
}

#[test]
#[ignore = "timing measurement; run with --ignored --nocapture"]
fn generator_vs_fio_4k_qd32() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let _nbdkit = Nbdkit(
        Command::new("nbdkit")
            .args([
                "-f",
                "--exit-with-parent",
                "-i",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "memory",
                "size=256M",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("nbdkit is installed"),
    );
    compare(port, "nbdkit memory");

    // pvd's NBD frontend on a memory backend, in a runtime of its own.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let server = NbdServer::new(Arc::new(MemBackend::new(256 << 20)), NbdConfig::default());
            server
                .serve_tcp(listener, async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
        });
    });
    compare(port, "pvd nbd MemBackend");
    let _ = stop_tx.send(());
    server.join().unwrap();
}
