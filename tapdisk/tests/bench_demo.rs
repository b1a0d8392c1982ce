//! `pvd demo`'s orchestration over the [`Cluster`] seam: every configuration it asks for is
//! measured, in order, into one report. The cluster here is nbdkit's memory plugin (one export
//! per configuration); the real cluster is `ProcessCluster`.

use std::process::{Child, Command, Stdio};

use clap::Parser;
use pvd::bench::cli::{run_demo, DemoArgs};
use pvd::bench::cluster::{free_local_addr, Cluster};
use pvd::bench::{BenchError, Mode, NbdTarget, Op, StageBreakdown};

#[derive(Default)]
struct NbdkitCluster {
    started: Vec<(usize, usize)>,
    children: Vec<Child>,
}

impl Cluster for NbdkitCluster {
    fn start(&mut self, servers: usize, stripes: usize) -> Result<NbdTarget, BenchError> {
        self.started.push((servers, stripes));
        let addr = free_local_addr()?;
        let child = Command::new("nbdkit")
            .args([
                "-f",
                "--exit-with-parent",
                "-i",
                "127.0.0.1",
                "-p",
                &addr.port().to_string(),
                "memory",
                "size=64M",
            ])
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| BenchError::Cluster(format!("nbdkit: {e}")))?;
        self.children.push(child);
        Ok(NbdTarget::tcp(addr.to_string()))
    }

    fn stages(&self) -> Vec<StageBreakdown> {
        vec![StageBreakdown {
            stage: "frontend".into(),
            mean_us: 1.0,
            p50_us: 1.0,
            p99_us: 2.0,
        }]
    }

    fn stop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.children.clear();
    }
}

#[derive(Parser)]
struct Demo {
    #[command(flatten)]
    args: DemoArgs,
}

#[test]
fn demo_measures_physical_virtual_and_parallel() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("demo.csv");
    let demo = Demo::try_parse_from([
        "demo",
        "--csv",
        csv.to_str().unwrap(),
        "--block-sizes",
        "4K,512K",
        "--queue-depths",
        "1,4",
        "--ops",
        "write",
        "--seconds-per-point",
        "0.1",
        "--disk-size",
        "32M",
        "--emulate-disk",
        "latency_us=100,mbps=400",
    ])
    .unwrap();
    let mut cluster = NbdkitCluster::default();
    let report = run_demo(&demo.args, &mut cluster, dir.path()).unwrap();
    cluster.stop();
    assert_eq!(cluster.started, vec![(1, 1), (2, 2)]);
    assert_eq!(report.points.len(), 3 * 2 * 2);
    assert_eq!(
        report.modes(),
        vec![Mode::Physical, Mode::Virtual, Mode::Parallel]
    );
    assert!(report
        .points
        .iter()
        .all(|p| p.op == Op::Write && p.mb_per_s > 0.0));
    assert_eq!(report.stages.len(), 1);
    // The physical file ran under the disk model: at least 100 µs per 4 KiB write at QD1.
    let p = report.point(Mode::Physical, Op::Write, 1, 4096).unwrap();
    assert!(p.mean_us >= 100.0, "{p:?}");
    let text = report.format_all();
    assert!(text.contains("disk model: latency_us=100,mbps=400"));
    assert!(text.contains("parallel (2 servers)"));
}

#[test]
fn demo_defaults_fit_the_acceptance_arithmetic() {
    let d = Demo::try_parse_from(["demo"]).unwrap().args;
    // A 512 KiB request must span two servers.
    assert!(d.stripe_unit <= 256 << 10);
    assert_eq!(d.block_sizes.len(), 9);
    // 3 modes x 2 ops x 2 queue depths x 9 sizes within about 40 s of measuring.
    let points = 3 * d.ops.len() * d.queue_depths.len() * d.block_sizes.len();
    assert!(points as f64 * d.seconds_per_point.as_secs_f64() <= 40.0);
    // Transfer dominates a 512 KiB request: T >= 8 L + 18 * 500 µs (see DEMO_DISK_MODEL).
    let t_us = (512 << 10) as f64 / d.emulate_disk.mbps;
    assert!(
        t_us >= 8.0 * d.emulate_disk.latency_us as f64 + 18.0 * 500.0,
        "T = {t_us} us"
    );
}

/// The real cluster: master, targets and a tapdisk as `pvd` child processes; data written
/// through the striped disk reads back.
#[test]
fn process_cluster_serves_a_striped_vdisk() {
    use pvd::bench::cluster::{ClusterConfig, ProcessCluster};
    use pvd::bench::service_time::parse_disk_model;
    use pvd::bench::NbdConnection;

    let dir = tempfile::tempdir().unwrap();
    let config = ClusterConfig {
        disk_model: parse_disk_model("latency_us=10,mbps=1000").unwrap(),
        vdisk_size: 64 << 20,
        stripe_unit: 256 << 10,
        lun_size: 256 << 20,
        work_dir: dir.path().to_path_buf(),
    };
    let mut cluster = ProcessCluster::new(env!("CARGO_BIN_EXE_pvd").into(), config);
    let target = cluster.start(2, 2).unwrap_or_else(|e| panic!("{e}"));
    let mut conn = NbdConnection::connect(&target).unwrap();
    assert_eq!(conn.size(), 64 << 20);
    let data: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    conn.write_at(3 << 20, &data).unwrap();
    conn.flush().unwrap();
    let mut back = vec![0u8; data.len()];
    conn.read_at(3 << 20, &mut back).unwrap();
    assert!(back == data);
    conn.disconnect().unwrap();
    cluster.stop();
}
