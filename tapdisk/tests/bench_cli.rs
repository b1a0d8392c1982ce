//! `pvd bench` and `pvd demo` as a user runs them: the binary, its tables, CSV and chart.

use std::process::Command;

fn pvd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pvd"));
    c.env("PVD_LOG", "warn");
    c
}

#[test]
fn bench_physical_file_writes_csv_and_chart() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.img");
    std::fs::File::create(&disk)
        .unwrap()
        .set_len(16 << 20)
        .unwrap();
    let csv = dir.path().join("out.csv");
    let chart = dir.path().join("out.svg");
    let out = pvd()
        .args(["bench", "--physical"])
        .arg(&disk)
        .args([
            "--emulate-disk",
            "latency_us=20,mbps=2000",
            "--block-sizes",
            "4K,64K",
            "--queue-depths",
            "1,8",
        ])
        .args([
            "--ops",
            "write,read",
            "--bytes-per-point",
            "1M",
            "--seconds-per-point",
            "0.2",
            "--csv",
        ])
        .arg(&csv)
        .arg("--chart")
        .arg(&chart)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("disk model: latency_us=20,mbps=2000"),
        "{stdout}"
    );
    assert!(
        stdout.contains("write, queue depth 8 (MB/s, ratio to physical)"),
        "{stdout}"
    );
    assert!(stdout.contains("physical                 X ="), "{stdout}");
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "mode,op,queue_depth,block_size,mb_per_s");
    assert_eq!(lines.len(), 1 + 2 * 2 * 2);
    assert!(lines[1..].iter().all(|l| l.starts_with("physical,")));
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(svg.contains("<svg") && svg.contains("physical"));
}

#[test]
fn bench_without_targets_explains() {
    let out = pvd().arg("bench").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to measure"));
}

/// The README's first command, as a newcomer types it: `pvd demo` with no arguments runs the
/// whole sweep on its embedded cluster, prints the tables and the overhead analysis, writes
/// pvd-demo.csv and pvd-demo.svg into the current directory, says where they are and leaves no
/// process or temporary directory behind.
#[test]
fn demo_with_no_arguments_runs_the_whole_job() {
    let cwd = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = pvd()
        .arg("demo")
        .current_dir(cwd.path())
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for table in [
        "write, queue depth 1",
        "write, queue depth 32",
        "read, queue depth 1",
        "read, queue depth 32",
    ] {
        assert!(stdout.contains(table), "no {table} table: {stdout}");
    }
    assert!(stdout.contains("parallel (2 servers)"), "{stdout}");
    assert!(stdout.contains("4K latency virtual - LUN"), "{stdout}");
    assert!(stdout.contains("csv: pvd-demo.csv"), "{stdout}");
    assert!(stdout.contains("chart: pvd-demo.svg"), "{stdout}");
    let csv = std::fs::read_to_string(cwd.path().join("pvd-demo.csv")).unwrap();
    assert!(csv.starts_with("mode,op,queue_depth,block_size,mb_per_s"));
    // 3 modes x 2 ops x 2 queue depths x 9 block sizes, plus the header.
    assert_eq!(csv.lines().count(), 1 + 3 * 2 * 2 * 9, "{csv}");
    let svg = std::fs::read_to_string(cwd.path().join("pvd-demo.svg")).unwrap();
    assert!(svg.contains("<svg"), "not an SVG");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(
        left.is_empty(),
        "the work directory was not removed: {left:?}"
    );
}

/// The demo's acceptance on the real cluster: for 512 KiB writes at QD1, the virtual disk on one
/// server reaches >= 0.9x the physical disk and striped over two servers >= 1.8x.
#[test]
#[ignore = "acceptance measurement of the whole data path (timing-dependent); run with --ignored"]
fn demo_512k_qd1_write_acceptance() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("demo.csv");
    let out = pvd()
        .args([
            "demo",
            "--block-sizes",
            "512K",
            "--queue-depths",
            "1",
            "--ops",
            "write",
        ])
        .args(["--seconds-per-point", "3", "--csv"])
        .arg(&csv)
        .arg("--chart")
        .arg(dir.path().join("demo.svg"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&csv).unwrap();
    let mb = |mode: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{mode},write,1,524288,")))
            .unwrap();
        line.rsplit(',').next().unwrap().parse().unwrap()
    };
    let (p, v, s) = (mb("physical"), mb("virtual"), mb("parallel"));
    println!("{stdout}");
    assert!(v >= 0.9 * p, "virtual {v} MB/s vs physical {p} MB/s");
    assert!(s >= 1.8 * p, "parallel {s} MB/s vs physical {p} MB/s");
}
