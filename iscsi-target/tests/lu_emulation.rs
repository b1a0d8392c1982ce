//! `--emulate-disk`: commands cost latency + size/bandwidth, one at a time, within 5%.

use std::time::{Duration, Instant};

use bytes::Bytes;
use iscsi_proto::scsi::build;
use iscsi_proto::scsi::ScsiStatus;
use iscsi_target::lu::{DiskEmulation, LogicalUnit, LuConfig, Nexus};

fn unit(emulate: Option<DiskEmulation>) -> (tempfile::NamedTempFile, LogicalUnit) {
    let f = tempfile::NamedTempFile::new().unwrap();
    f.as_file().set_len(16 << 20).unwrap();
    let mut cfg = LuConfig::new(f.path(), 0);
    cfg.emulate = emulate;
    (f, LogicalUnit::open(cfg).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qd1_512k_reads_take_the_modelled_time() {
    let model: DiskEmulation = "latency_us=2000,mbps=200".parse().unwrap();
    let (_f, lu) = unit(Some(model));
    let n = Nexus::new("iqn.i", [0; 6], "iqn.t", 1);
    let expected = model.service_time(512 << 10); // 2 ms + 2.62 ms
    let rounds = 25;
    let cdb = build::read16(0, 1024, false);
    // Warm the page cache so the backing store costs little.
    lu.execute(&n, &cdb, Bytes::new()).await;
    // The median command time resists the scheduling hiccups of a loaded machine.
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        let o = lu.execute(&n, &cdb, Bytes::new()).await;
        times.push(t.elapsed());
        assert_eq!(o.status, ScsiStatus::GOOD);
    }
    times.sort();
    let per = times[rounds / 2];
    let err = (per.as_secs_f64() - expected.as_secs_f64()) / expected.as_secs_f64();
    eprintln!(
        "median per command {per:?}, model {expected:?}, error {:.2}%",
        err * 100.0
    );
    assert!(err.abs() < 0.05, "per command {per:?}, model {expected:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commands_are_serialised_like_one_spindle() {
    let model = DiskEmulation {
        latency_us: 3000,
        mbps: 1000.0,
    };
    let (_f, lu) = unit(Some(model));
    let lu = std::sync::Arc::new(lu);
    let t = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..8u64 {
        let lu = lu.clone();
        tasks.push(tokio::spawn(async move {
            let n = Nexus::new("iqn.i", [0; 6], "iqn.t", 1);
            lu.execute(
                &n,
                &build::write16(i * 8, 8, false),
                Bytes::from(vec![0u8; 4096]),
            )
            .await
            .status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), ScsiStatus::GOOD);
    }
    let total = t.elapsed();
    let expected = model.service_time(4096) * 8;
    assert!(
        total >= expected - Duration::from_micros(200),
        "{total:?} < {expected:?}"
    );
    assert!(total < expected * 2, "{total:?}");
}
