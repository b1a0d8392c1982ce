//! libiscsi's SCSI/iSCSI conformance suite (`iscsi-test-cu`) against `pvd target`.
//!
//! The suite runs every test (`-t ALL`, destructive ones included) on a 128 MiB LUN; the test
//! parses CUnit's summary and requires zero failures. With `PVD_COMPARE_TGTD=1` it also runs
//! the suite against tgtd serving a like file and prints both tallies (pvd must run more tests
//! to a pass without skipping them).

mod target_common;

use pvd_integration::tgtd::Tgtd;
use pvd_integration::{require_tool, sparse_file};
use std::process::Command;
use target_common::{PvdTarget, INITIATOR, INITIATOR2};

/// What one run of the suite reported.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    ran: u32,
    passed: u32,
    failed: u32,
    /// Tests that "passed" by printing [SKIPPED].
    skipped: u32,
}

impl Tally {
    fn real_passes(&self) -> u32 {
        self.passed - self.skipped
    }
}

/// Parses `iscsi-test-cu` output: the `tests` row of the Run Summary and the per-test blocks.
fn parse(out: &str) -> Tally {
    let mut t = Tally::default();
    let row = out
        .lines()
        .find(|l| l.trim_start().starts_with("tests "))
        .unwrap_or_else(|| panic!("no CUnit summary in output:\n{out}"));
    let nums: Vec<u32> = row
        .split_whitespace()
        .skip(1)
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(nums.len() >= 4, "bad summary row {row:?}");
    t.ran = nums[1];
    t.passed = nums[2];
    t.failed = nums[3];
    let mut block = String::new();
    let flush = |b: &mut String, t: &mut Tally| {
        if b.contains("[SKIPPED]") && !b.contains("FAILED") {
            t.skipped += 1;
        }
        b.clear();
    };
    for line in out.lines() {
        let l = line.trim_start();
        if l.starts_with("Test: ") || l.starts_with("Suite: ") || l.starts_with("Run Summary") {
            flush(&mut block, &mut t);
        }
        block.push_str(line);
        block.push('\n');
    }
    flush(&mut block, &mut t);
    t
}

fn run_suite(url: &str) -> (Tally, String) {
    let bin = require_tool("iscsi-test-cu");
    let out = Command::new(bin)
        .args([
            "--dataloss",
            "-i",
            INITIATOR,
            "-I",
            INITIATOR2,
            url,
            "-t",
            "ALL",
        ])
        .output()
        .expect("run iscsi-test-cu");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (parse(&text), text)
}

fn failed_tests(out: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut current = String::new();
    for line in out.lines() {
        let l = line.trim_start();
        if let Some(rest) = l.strip_prefix("Test: ") {
            current = rest.split(" ...").next().unwrap_or(rest).to_string();
        }
        if line.contains("FAILED") && !names.contains(&current) {
            names.push(current.clone());
        }
    }
    names
}

#[test]
fn iscsi_test_cu_all_pass() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("lun0.img");
    sparse_file(&img, 128 << 20);
    let target = PvdTarget::start(&[&img], &[]);
    let (pvd, text) = run_suite(&target.url(0));
    println!(
        "pvd target: ran {} passed {} failed {} skipped {} (passed without skipping: {})",
        pvd.ran,
        pvd.passed,
        pvd.failed,
        pvd.skipped,
        pvd.real_passes()
    );
    assert!(pvd.ran >= 200, "suite ran only {} tests:\n{text}", pvd.ran);
    assert_eq!(
        pvd.failed,
        0,
        "iscsi-test-cu failures: {:?}\n{text}",
        failed_tests(&text)
    );
    drop(target);

    if std::env::var_os("PVD_COMPARE_TGTD").is_some() {
        let tgt_img = dir.path().join("tgtd.img");
        sparse_file(&tgt_img, 128 << 20);
        let tgtd = Tgtd::start("iqn.2026-11.io.tgtd:test", &tgt_img);
        let (tgt, _) = run_suite(&tgtd.url());
        println!(
            "tgtd: ran {} passed {} failed {} skipped {} (passed without skipping: {})",
            tgt.ran,
            tgt.passed,
            tgt.failed,
            tgt.skipped,
            tgt.real_passes()
        );
        assert!(pvd.real_passes() > tgt.real_passes());
    }
}

#[test]
fn summary_parser_counts_skips() {
    let out = "Suite: A\n  Test: X ...passed\n  Test: Y ...    [SKIPPED] nope\npassed\n  \
               Test: Z ...FAILED\n    1. z.c:1 - CU_FAIL\nRun Summary:    Type  Total    Ran \
               Passed Failed Inactive\n              suites      1      1    n/a      0        \
               0\n               tests      3      3      2      1        0\n";
    let t = parse(out);
    assert_eq!((t.ran, t.passed, t.failed, t.skipped), (3, 2, 1, 1));
    assert_eq!(failed_tests(out), vec!["Z".to_string()]);
}
