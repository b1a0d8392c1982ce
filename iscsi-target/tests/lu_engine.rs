//! Throughput of the logical unit's I/O engines at queue depth 32 (run with
//! `cargo test --release -p iscsi-target --test lu_engine -- --ignored --nocapture`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use iscsi_proto::scsi::{build, ScsiStatus};
use iscsi_target::lu::{IoEngine, LogicalUnit, LuConfig, Nexus};

const SIZE: u64 = 256 << 20;

async fn run(
    lu: Arc<LogicalUnit>,
    block_bytes: u32,
    write: bool,
    qd: usize,
    dur: Duration,
) -> (u64, f64) {
    let blocks = block_bytes / lu.block_size();
    let span = lu.num_blocks() / blocks as u64;
    let deadline = Instant::now() + dur;
    let mut tasks = Vec::new();
    let start = Instant::now();
    for q in 0..qd {
        let lu = lu.clone();
        tasks.push(tokio::spawn(async move {
            let n = Nexus::new("iqn.i", [0; 6], "iqn.t", 1);
            let data = Bytes::from(vec![q as u8; block_bytes as usize]);
            let mut x = q as u64 * 7919 + 1;
            let mut ops = 0u64;
            while Instant::now() < deadline {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let lba = (x >> 33) % span * blocks as u64;
                let o = if write {
                    lu.execute(&n, &build::write16(lba, blocks, false), data.clone())
                        .await
                } else {
                    lu.execute(&n, &build::read16(lba, blocks, false), Bytes::new())
                        .await
                };
                assert_eq!(o.status, ScsiStatus::GOOD);
                ops += 1;
            }
            ops
        }));
    }
    let mut ops = 0;
    for t in tasks {
        ops += t.await.unwrap();
    }
    (ops, start.elapsed().as_secs_f64())
}

#[test]
#[ignore = "benchmark"]
fn engines_qd32() {
    let dir = std::env::var("LU_BENCH_DIR")
        .unwrap_or_else(|_| std::env::temp_dir().display().to_string());
    let f = tempfile::NamedTempFile::new_in(dir).unwrap();
    // A fully written file, in the page cache.
    let chunk = vec![0xA5u8; 1 << 20];
    for i in 0..(SIZE >> 20) {
        std::os::unix::fs::FileExt::write_all_at(f.as_file(), &chunk, i << 20).unwrap();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for engine in [IoEngine::Adaptive, IoEngine::BlockingPool, IoEngine::Inline] {
        let mut cfg = LuConfig::new(f.path(), 0);
        cfg.engine = engine;
        let lu = Arc::new(LogicalUnit::open(cfg).unwrap());
        for (bytes, write) in [
            (4096u32, false),
            (4096, true),
            (131072, false),
            (131072, true),
        ] {
            let (ops, secs) =
                rt.block_on(run(lu.clone(), bytes, write, 32, Duration::from_secs(3)));
            println!(
                "{engine:?} {} {}K QD32: {:.0} IOPS, {:.0} MB/s",
                if write { "write" } else { "read" },
                bytes / 1024,
                ops as f64 / secs,
                ops as f64 * bytes as f64 / secs / 1e6
            );
        }
    }
}
