//! The harness's outputs from a sweep: CSV file, chart file, printed tables.

use std::sync::Arc;
use std::time::Duration;

use pvd::bench::chart::write_chart_svg;
use pvd::bench::runner::{BenchPlan, ModeTarget};
use pvd::bench::service_time::{DiskEmulation, ServiceTimeModel, SpindleModel};
use pvd::bench::target_local::LocalFileTarget;
use pvd::bench::{run_bench, BenchPoint, BenchReport, Mode, Op, StageBreakdown};

fn synthetic() -> BenchReport {
    let mut points = Vec::new();
    for op in [Op::Write, Op::Read] {
        for qd in [1usize, 32] {
            for shift in 12..=20 {
                let bs = 1u32 << shift;
                let base = f64::from(bs) / 1e4;
                for (mode, k) in [
                    (Mode::Physical, 1.0),
                    (Mode::Virtual, 0.9),
                    (Mode::Parallel, 1.85),
                ] {
                    points.push(BenchPoint {
                        mode,
                        op,
                        queue_depth: qd,
                        block_size: bs,
                        mb_per_s: base * k,
                        iops: 0.0,
                        mean_us: 100.0 + f64::from(bs) / 1024.0 * 10.0 / k,
                        p50_us: 0.0,
                        p99_us: 0.0,
                    });
                }
            }
        }
    }
    BenchReport {
        points,
        parallel_servers: 2,
        disk_model: Some(DiskEmulation {
            latency_us: 50,
            mbps: 100.0,
        }),
        stages: vec![StageBreakdown {
            stage: "iscsi round trip".into(),
            mean_us: 80.0,
            p50_us: 70.0,
            p99_us: 300.0,
        }],
        lun_qd1_writes: Vec::new(),
        layer_cost: None,
    }
}

#[test]
fn chart_is_an_svg_with_every_series() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chart.svg");
    write_chart_svg(&synthetic(), &path).unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    assert!(svg.len() > 10_000, "{} bytes", svg.len());
    assert!(
        svg.starts_with("<svg") || svg.contains("<svg"),
        "not an SVG"
    );
    for label in [
        "physical",
        "virtual (1 server)",
        "parallel (2 servers)",
        "write throughput, QD1",
        "read ratio to physical, QD32",
        "512K",
        "1M",
    ] {
        assert!(svg.contains(label), "chart lacks {label:?}");
    }
    assert!(svg.trim_end().ends_with("</svg>"));
}

#[test]
fn empty_report_has_no_chart() {
    let dir = tempfile::tempdir().unwrap();
    assert!(write_chart_svg(&BenchReport::default(), &dir.path().join("x.svg")).is_err());
}

#[test]
fn full_text_has_tables_fit_and_stages() {
    let text = synthetic().format_all();
    assert!(text.starts_with("disk model: latency_us=50,mbps=100"));
    assert!(text.contains("write, queue depth 1 (MB/s, ratio to physical)"));
    assert!(text.contains("read, queue depth 32"));
    assert!(text.contains("(0.90x)") && text.contains("(1.85x)"));
    assert!(text.contains("X_virtual - X_physical = +0.0 us"), "{text}");
    assert!(text.contains("iscsi round trip"));
}

#[test]
fn sweep_over_local_targets_produces_csv_rows() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.img");
    let b = dir.path().join("b.img");
    for p in [&a, &b] {
        std::fs::File::create(p).unwrap().set_len(8 << 20).unwrap();
    }
    let model: Arc<dyn ServiceTimeModel> = Arc::new(SpindleModel::new(DiskEmulation {
        latency_us: 100,
        mbps: 500.0,
    }));
    let phys = LocalFileTarget::new(&a, Some(model));
    let fast = LocalFileTarget::new(&b, None);
    let plan = BenchPlan {
        block_sizes: vec![4096, 65536],
        queue_depths: vec![1, 4],
        ops: vec![Op::Write, Op::Read],
        bytes_per_point: Some(1 << 20),
        time_per_point: Some(Duration::from_millis(200)),
        region: None,
    };
    let report = run_bench(
        &plan,
        &[
            ModeTarget {
                mode: Mode::Physical,
                target: &phys,
            },
            ModeTarget {
                mode: Mode::Virtual,
                target: &fast,
            },
        ],
        2,
    )
    .unwrap();
    assert_eq!(report.points.len(), 16);
    let csv = report.to_csv();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "mode,op,queue_depth,block_size,mb_per_s");
    assert_eq!(lines.len(), 17);
    assert!(lines[1].starts_with("physical,write,1,4096,"));
    assert!(lines.iter().any(|l| l.starts_with("virtual,read,4,65536,")));
    for l in &lines[1..] {
        let f: Vec<&str> = l.split(',').collect();
        assert_eq!(f.len(), 5);
        let mb: f64 = f[4].parse().unwrap();
        assert!(mb > 0.0, "{l}");
    }
    // The unmodelled file is faster than 100 µs per command at 4 KiB QD1.
    let r = report
        .ratio_to_physical(Mode::Virtual, Op::Write, 1, 4096)
        .unwrap();
    assert!(r > 1.0, "ratio {r}");
    // Every physical QD1 write took at least the model's 100 µs + 4096 B at 500 MB/s.
    let p4k = report.point(Mode::Physical, Op::Write, 1, 4096).unwrap();
    assert!(p4k.mean_us >= 108.0 && p4k.p50_us >= 108.0, "{p4k:?}");
    let s = report.overhead_summary();
    assert!(s.fits.iter().any(|(m, _)| *m == Mode::Physical));
    assert_eq!(s.constant_cost_delta_us.len(), 1);
}
