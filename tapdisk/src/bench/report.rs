//! Results of a benchmark: the points, the CSV, the throughput tables (Figures 3.1 and 6.1 as
//! numbers) and the constant-cost analysis of thesis Table 3.1.

use std::io::Write;

use super::fit::{fit_linear, LinearFit};
use super::layer_cost::LayerCost;
use super::service_time::{disk_model_arg, DiskEmulation};
use super::stages::{format_stage_table, StageBreakdown};
use super::workload::{Measurement, Op};

/// Which disk a point measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    /// The backing file driven locally through the disk model.
    Physical,
    /// The virtual disk on one server.
    Virtual,
    /// The virtual disk striped over several servers.
    Parallel,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Physical, Mode::Virtual, Mode::Parallel];

    /// The name used in the CSV.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Physical => "physical",
            Mode::Virtual => "virtual",
            Mode::Parallel => "parallel",
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One measured point, summarised.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchPoint {
    pub mode: Mode,
    pub op: Op,
    pub queue_depth: usize,
    pub block_size: u32,
    pub mb_per_s: f64,
    pub iops: f64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

impl BenchPoint {
    pub fn from_measurement(
        mode: Mode,
        op: Op,
        queue_depth: usize,
        block_size: u32,
        m: &Measurement,
    ) -> Self {
        let p = m.percentiles_us(&[50.0, 99.0]);
        BenchPoint {
            mode,
            op,
            queue_depth,
            block_size,
            mb_per_s: m.mb_per_s(),
            iops: m.iops(),
            mean_us: m.mean_latency_us(),
            p50_us: p[0],
            p99_us: p[1],
        }
    }
}

/// Every point of a run plus what is needed to present it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BenchReport {
    pub points: Vec<BenchPoint>,
    /// How many servers the parallel mode striped over (for labels).
    pub parallel_servers: usize,
    /// The disk model of the physical baseline (and of the targets), if any.
    pub disk_model: Option<DiskEmulation>,
    /// Per-stage latencies of the virtual disk, when the daemon provided them.
    pub stages: Vec<StageBreakdown>,
    /// QD1 write points measured on a server's LUN straight over iSCSI, no virtual layer
    /// (block size, mean latency µs): splits the virtual layer's cost from the transport's.
    pub lun_qd1_writes: Vec<(u32, f64)>,
    /// The virtual layer's own cost at the smallest block size, virtual disk and LUN measured
    /// alternately.
    pub layer_cost: Option<LayerCost>,
}

/// The constant cost the virtual layer adds (Table 3.1's X), per mode against physical.
#[derive(Debug, Clone, PartialEq)]
pub struct OverheadSummary {
    /// The QD1 write fit of each mode that has at least two block sizes.
    pub fits: Vec<(Mode, LinearFit)>,
    /// `X_mode - X_physical` in µs for every non-physical mode.
    pub constant_cost_delta_us: Vec<(Mode, f64)>,
    /// Mean 4 KiB QD1 write latency of the mode minus the physical one, µs.
    pub latency_4k_delta_us: Vec<(Mode, f64)>,
    /// The QD1 write fit of the LUN reached straight over iSCSI, when measured.
    pub lun_fit: Option<LinearFit>,
}

/// One row of the Table 3.1 fits.
fn fit_line(label: &str, f: &LinearFit) -> String {
    format!(
        "  {:<24} X = {:8.1} us   Y = {:6.3} us/KiB   R^2 = {:.4}\n",
        label, f.x_us, f.y_us_per_kib, f.r_squared
    )
}

/// Rounds to a tenth first, so that float noise around zero prints as +0.0, not -0.0.
fn tenth(d: f64) -> f64 {
    (d * 10.0).round() / 10.0 + 0.0
}

/// Formats a block size as `4K`, `512K`, `1M`.
pub fn block_label(bytes: u32) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{}M", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes.is_multiple_of(1 << 10) {
        format!("{}K", bytes >> 10)
    } else {
        bytes.to_string()
    }
}

impl BenchReport {
    /// The point for this combination, if measured.
    pub fn point(
        &self,
        mode: Mode,
        op: Op,
        queue_depth: usize,
        block_size: u32,
    ) -> Option<&BenchPoint> {
        self.points.iter().find(|p| {
            p.mode == mode
                && p.op == op
                && p.queue_depth == queue_depth
                && p.block_size == block_size
        })
    }

    /// The modes present, in physical, virtual, parallel order.
    pub fn modes(&self) -> Vec<Mode> {
        Mode::ALL
            .into_iter()
            .filter(|m| self.points.iter().any(|p| p.mode == *m))
            .collect()
    }

    /// The (op, queue depth) combinations present, writes first.
    pub fn series(&self) -> Vec<(Op, usize)> {
        let mut v: Vec<(Op, usize)> = self.points.iter().map(|p| (p.op, p.queue_depth)).collect();
        v.sort_by_key(|&(op, qd)| (op == Op::Read, qd));
        v.dedup();
        v
    }

    /// Block sizes present, ascending.
    pub fn block_sizes(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.points.iter().map(|p| p.block_size).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Label of a mode in tables and charts.
    pub fn mode_label(&self, mode: Mode) -> String {
        match mode {
            Mode::Physical => "physical".into(),
            Mode::Virtual => "virtual (1 server)".into(),
            Mode::Parallel => format!("parallel ({} servers)", self.parallel_servers.max(2)),
        }
    }

    /// Throughput of `mode` divided by physical at the same point.
    pub fn ratio_to_physical(
        &self,
        mode: Mode,
        op: Op,
        queue_depth: usize,
        block_size: u32,
    ) -> Option<f64> {
        let phys = self
            .point(Mode::Physical, op, queue_depth, block_size)?
            .mb_per_s;
        let this = self.point(mode, op, queue_depth, block_size)?.mb_per_s;
        (phys > 0.0).then(|| this / phys)
    }

    /// Writes the CSV: header `mode,op,queue_depth,block_size,mb_per_s`, block size in bytes,
    /// MB/s in 10^6 bytes per second with two decimals.
    pub fn write_csv(&self, mut w: impl Write) -> std::io::Result<()> {
        writeln!(w, "mode,op,queue_depth,block_size,mb_per_s")?;
        for p in &self.points {
            writeln!(
                w,
                "{},{},{},{},{:.2}",
                p.mode, p.op, p.queue_depth, p.block_size, p.mb_per_s
            )?;
        }
        Ok(())
    }

    pub fn to_csv(&self) -> String {
        let mut v = Vec::new();
        self.write_csv(&mut v)
            .expect("writing to a Vec cannot fail");
        String::from_utf8(v).expect("CSV is ASCII")
    }

    /// One table per (op, queue depth): rows are block sizes, columns MB/s per mode and the
    /// ratio to physical.
    pub fn format_tables(&self) -> String {
        let modes = self.modes();
        let mut out = String::new();
        for (op, qd) in self.series() {
            out.push_str(&format!(
                "{op}, queue depth {qd} (MB/s, ratio to physical)\n"
            ));
            let mut header = format!("{:>6}", "block");
            for &m in &modes {
                let label = self.mode_label(m);
                if m == Mode::Physical {
                    header.push_str(&format!("  {label:>10}"));
                } else {
                    header.push_str(&format!("  {label:>24}"));
                }
            }
            out.push_str(header.trim_end());
            out.push('\n');
            for bs in self.block_sizes() {
                let mut row = format!("{:>6}", block_label(bs));
                for &m in &modes {
                    let cell = match self.point(m, op, qd, bs) {
                        None => "-".to_string(),
                        Some(p) if m == Mode::Physical => format!("{:.1}", p.mb_per_s),
                        Some(p) => match self.ratio_to_physical(m, op, qd, bs) {
                            Some(r) => format!("{:.1} ({:.2}x)", p.mb_per_s, r),
                            None => format!("{:.1}", p.mb_per_s),
                        },
                    };
                    let w = if m == Mode::Physical { 10 } else { 24 };
                    row.push_str(&format!("  {cell:>w$}"));
                }
                out.push_str(&row);
                out.push('\n');
            }
            out.push('\n');
        }
        out
    }

    /// Table 3.1's model fitted to the QD1 write points of every mode.
    pub fn overhead_summary(&self) -> OverheadSummary {
        let mut fits = Vec::new();
        for mode in self.modes() {
            let pts: Vec<(f64, f64)> = self
                .points
                .iter()
                .filter(|p| p.mode == mode && p.op == Op::Write && p.queue_depth == 1)
                .map(|p| (f64::from(p.block_size) / 1024.0, p.mean_us))
                .collect();
            if let Some(f) = fit_linear(&pts) {
                fits.push((mode, f));
            }
        }
        let phys_fit = fits
            .iter()
            .find(|(m, _)| *m == Mode::Physical)
            .map(|(_, f)| *f);
        let constant_cost_delta_us = match phys_fit {
            Some(pf) => fits
                .iter()
                .filter(|(m, _)| *m != Mode::Physical)
                .map(|(m, f)| (*m, f.x_us - pf.x_us))
                .collect(),
            None => Vec::new(),
        };
        let latency_4k_delta_us = match self.point(Mode::Physical, Op::Write, 1, 4096) {
            Some(pp) => Mode::ALL[1..]
                .iter()
                .filter_map(|&m| {
                    self.point(m, Op::Write, 1, 4096)
                        .map(|p| (m, p.mean_us - pp.mean_us))
                })
                .collect(),
            None => Vec::new(),
        };
        let lun_pts: Vec<(f64, f64)> = self
            .lun_qd1_writes
            .iter()
            .map(|&(bs, us)| (f64::from(bs) / 1024.0, us))
            .collect();
        OverheadSummary {
            fits,
            constant_cost_delta_us,
            latency_4k_delta_us,
            lun_fit: fit_linear(&lun_pts),
        }
    }

    /// The overhead analysis as text.
    pub fn format_overhead(&self) -> String {
        let s = self.overhead_summary();
        let mut out =
            String::from("per-request cost, QD1 writes: time = X + Y * size (thesis Table 3.1)\n");
        for (m, f) in &s.fits {
            out.push_str(&fit_line(&self.mode_label(*m), f));
        }
        for (m, d) in &s.constant_cost_delta_us {
            out.push_str(&format!("  X_{} - X_physical = {:+.1} us\n", m, tenth(*d)));
        }
        for (m, d) in &s.latency_4k_delta_us {
            out.push_str(&format!(
                "  4K latency {} - physical = {:+.1} us\n",
                m,
                tenth(*d)
            ));
        }
        out.push_str(&self.format_layers(&s));
        out.push_str(&self.format_layer_cost());
        out
    }

    /// The virtual layer's own cost at a small block size ([`LayerCost`]), when measured.
    fn format_layer_cost(&self) -> String {
        let Some(c) = &self.layer_cost else {
            return String::new();
        };
        let (Some(d), Some((lo, hi))) = (c.median_delta_us(), c.delta_range_us()) else {
            return String::new();
        };
        format!(
            "  {} latency virtual - LUN = {:+.1} us (QD1 writes, per-request medians, median of {} \
             alternated rounds; rounds {:+.1} to {:+.1} us)\n",
            block_label(c.block_size),
            tenth(d),
            c.rounds.len(),
            tenth(lo),
            tenth(hi)
        )
    }

    /// Splits the virtual disk's constant cost into the transport (pvd's initiator straight to
    /// a server's LUN) and the virtual layer on top of it (NBD frontend and tapdisk).
    fn format_layers(&self, s: &OverheadSummary) -> String {
        let Some(lun) = s.lun_fit else {
            return String::new();
        };
        let fit_of = |mode| s.fits.iter().find(|(m, _)| *m == mode).map(|(_, f)| *f);
        let mut out = fit_line("server LUN over iSCSI", &lun);
        if let Some(p) = fit_of(Mode::Physical) {
            out.push_str(&format!(
                "  transport (initiator, TCP, target): X_lun - X_physical = {:+.1} us\n",
                tenth(lun.x_us - p.x_us)
            ));
        }
        if let Some(v) = fit_of(Mode::Virtual) {
            out.push_str(&format!(
                "  virtual layer (NBD frontend + tapdisk): X_virtual - X_lun = {:+.1} us\n",
                tenth(v.x_us - lun.x_us)
            ));
        }
        out
    }

    /// Everything a run prints: disk model, tables, overhead analysis, stage breakdown.
    pub fn format_all(&self) -> String {
        let mut out = String::new();
        if let Some(d) = self.disk_model {
            out.push_str(&format!("disk model: {}\n\n", disk_model_arg(&d)));
        }
        out.push_str(&self.format_tables());
        out.push_str(&self.format_overhead());
        if !self.stages.is_empty() {
            out.push_str("\nvirtual disk stages (thesis Table 3.2)\n");
            out.push_str(&format_stage_table(&self.stages));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(mode: Mode, op: Op, qd: usize, bs: u32, mb: f64, mean_us: f64) -> BenchPoint {
        BenchPoint {
            mode,
            op,
            queue_depth: qd,
            block_size: bs,
            mb_per_s: mb,
            iops: 0.0,
            mean_us,
            p50_us: 0.0,
            p99_us: 0.0,
        }
    }

    fn sample() -> BenchReport {
        let mut points = Vec::new();
        for (i, bs) in [4096u32, 8192].into_iter().enumerate() {
            let kib = f64::from(bs) / 1024.0;
            points.push(pt(
                Mode::Physical,
                Op::Write,
                1,
                bs,
                10.0 * (i + 1) as f64,
                100.0 + 2.0 * kib,
            ));
            points.push(pt(
                Mode::Virtual,
                Op::Write,
                1,
                bs,
                9.0 * (i + 1) as f64,
                115.0 + 2.0 * kib,
            ));
            points.push(pt(
                Mode::Parallel,
                Op::Write,
                1,
                bs,
                19.0 * (i + 1) as f64,
                118.0 + 1.0 * kib,
            ));
        }
        points.push(pt(Mode::Physical, Op::Read, 32, 4096, 50.0, 0.0));
        BenchReport {
            points,
            parallel_servers: 2,
            disk_model: None,
            stages: Vec::new(),
            lun_qd1_writes: Vec::new(),
            layer_cost: None,
        }
    }

    #[test]
    fn csv_has_exact_header_and_rows() {
        let csv = sample().to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "mode,op,queue_depth,block_size,mb_per_s");
        assert_eq!(lines[1], "physical,write,1,4096,10.00");
        assert_eq!(lines[2], "virtual,write,1,4096,9.00");
        assert_eq!(lines[3], "parallel,write,1,4096,19.00");
        assert_eq!(lines[7], "physical,read,32,4096,50.00");
        assert_eq!(lines.len(), 8);
        for l in &lines[1..] {
            assert_eq!(l.split(',').count(), 5);
        }
    }

    #[test]
    fn tables_show_ratios() {
        let t = sample().format_tables();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "write, queue depth 1 (MB/s, ratio to physical)");
        assert_eq!(
            lines[1],
            " block    physical        virtual (1 server)      parallel (2 servers)"
        );
        assert_eq!(
            lines[2],
            "    4K        10.0               9.0 (0.90x)              19.0 (1.90x)"
        );
        assert_eq!(
            lines[3],
            "    8K        20.0              18.0 (0.90x)              38.0 (1.90x)"
        );
        assert!(t.contains("read, queue depth 32"));
        // Read QD32 only has a physical point: the others show a dash.
        assert!(t.lines().any(|l| l.trim_start().starts_with("4K")
            && l.contains("50.0")
            && l.trim_end().ends_with('-')));
    }

    #[test]
    fn overhead_is_difference_of_fitted_constants() {
        let s = sample().overhead_summary();
        let delta: Vec<(Mode, f64)> = s
            .constant_cost_delta_us
            .iter()
            .map(|(m, d)| (*m, (d * 1e6).round() / 1e6))
            .collect();
        assert_eq!(delta, vec![(Mode::Virtual, 15.0), (Mode::Parallel, 18.0)]);
        assert_eq!(s.latency_4k_delta_us[0].0, Mode::Virtual);
        assert!((s.latency_4k_delta_us[0].1 - 15.0).abs() < 1e-9);
        assert!((s.latency_4k_delta_us[1].1 - 14.0).abs() < 1e-9);
        let text = sample().format_overhead();
        assert!(text.contains("X_virtual - X_physical = +15.0 us"), "{text}");
        assert!(!text.contains("X_lun"), "no LUN points, no split: {text}");
    }

    #[test]
    fn lun_baseline_splits_transport_from_virtual_layer() {
        let mut r = sample();
        // LUN: X = 108 us, Y = 2 us/KiB (physical X = 100, virtual X = 115).
        r.lun_qd1_writes = vec![(4096, 116.0), (8192, 124.0)];
        let s = r.overhead_summary();
        let lun = s.lun_fit.expect("two LUN points");
        assert!((lun.x_us - 108.0).abs() < 1e-6, "{lun:?}");
        let text = r.format_overhead();
        assert!(text.contains("X_lun - X_physical = +8.0 us"), "{text}");
        assert!(text.contains("X_virtual - X_lun = +7.0 us"), "{text}");
        assert!(
            !text.contains("latency virtual - LUN"),
            "not measured: {text}"
        );
    }

    #[test]
    fn layer_cost_line_shows_the_median_and_range_of_rounds() {
        let mut r = sample();
        r.layer_cost = Some(LayerCost {
            block_size: 4096,
            rounds: vec![(120.0, 131.5), (118.0, 124.0), (125.0, 133.0)],
        });
        let text = r.format_overhead();
        assert!(
            text.contains("4K latency virtual - LUN = +8.0 us (QD1 writes, per-request medians, median of 3 alternated rounds; rounds +6.0 to +11.5 us)"),
            "{text}"
        );
    }

    #[test]
    fn block_labels() {
        assert_eq!(block_label(4096), "4K");
        assert_eq!(block_label(512 * 1024), "512K");
        assert_eq!(block_label(1 << 20), "1M");
        assert_eq!(block_label(512), "512");
    }
}
