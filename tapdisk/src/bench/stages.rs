//! Thesis Table 3.2 analogue: where a request's time goes inside the virtual disk, stage by
//! stage (frontend queue, sort/merge, translation, per-server iSCSI round trip...). The daemon
//! fills these from its latency histograms; the harness prints them under the throughput tables.

/// Latency of one stage of the data path.
#[derive(Debug, Clone, PartialEq)]
pub struct StageBreakdown {
    /// What the stage is, e.g. "nbd receive", "split+merge", "iscsi round trip".
    pub stage: String,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

/// A fixed-width text table of the stages, one line each, with a header.
pub fn format_stage_table(stages: &[StageBreakdown]) -> String {
    let width = stages
        .iter()
        .map(|s| s.stage.len())
        .max()
        .unwrap_or(0)
        .max("stage".len());
    let mut out = format!(
        "{:<width$}  {:>10}  {:>10}  {:>10}\n",
        "stage", "mean us", "p50 us", "p99 us"
    );
    for s in stages {
        out.push_str(&format!(
            "{:<width$}  {:>10.1}  {:>10.1}  {:>10.1}\n",
            s.stage, s.mean_us, s.p50_us, s.p99_us
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_aligned_rows() {
        let t = format_stage_table(&[
            StageBreakdown {
                stage: "nbd receive".into(),
                mean_us: 3.24,
                p50_us: 3.0,
                p99_us: 9.5,
            },
            StageBreakdown {
                stage: "iscsi".into(),
                mean_us: 120.0,
                p50_us: 110.0,
                p99_us: 400.04,
            },
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], "stage           mean us      p50 us      p99 us");
        assert_eq!(lines[1], "nbd receive         3.2         3.0         9.5");
        assert_eq!(lines[2], "iscsi             120.0       110.0       400.0");
    }
}
