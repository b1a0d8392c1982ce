//! Thesis section 3.2, Table 3.1: `Time cost = X + Y * Size`, fitted over (request size,
//! per-request time) points. X is the constant cost of a request in µs, Y the cost per KiB in µs.
//!
//! The line is the Theil-Sen estimate (slope: the median of the slopes between every two
//! points of different sizes; X: the median of `time - Y * size`), not least squares: on a
//! shared machine one disturbed point (a 1 MiB point 20% slow) moved a least-squares X by
//! hundreds of microseconds, because the largest sizes carry the most weight; the medians
//! ignore a single bad point.

/// A fitted `time_us = x_us + y_us_per_kib * size_kib`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearFit {
    /// Constant cost per request, µs.
    pub x_us: f64,
    /// Cost per KiB transferred, µs.
    pub y_us_per_kib: f64,
    /// Coefficient of determination of the fit (1 for a perfect line).
    pub r_squared: f64,
    /// Number of points fitted.
    pub points: usize,
}

impl LinearFit {
    /// The modelled time of one request of `size_kib` KiB, µs.
    pub fn time_us(&self, size_kib: f64) -> f64 {
        self.x_us + self.y_us_per_kib * size_kib
    }
}

/// Median of `v` (the mean of the middle two for an even count); `None` when empty.
pub(crate) fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

/// Theil-Sen line through `(size_kib, time_us)` points; `None` with fewer than two distinct
/// sizes.
pub fn fit_linear(points: &[(f64, f64)]) -> Option<LinearFit> {
    let n = points.len();
    let mut slopes = Vec::with_capacity(n * n.saturating_sub(1) / 2);
    for (i, a) in points.iter().enumerate() {
        for b in &points[i + 1..] {
            if a.0 != b.0 {
                slopes.push((b.1 - a.1) / (b.0 - a.0));
            }
        }
    }
    let slope = median(&mut slopes)?;
    let mut intercepts: Vec<f64> = points.iter().map(|p| p.1 - slope * p.0).collect();
    let intercept = median(&mut intercepts)?;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n as f64;
    let ss_tot: f64 = points.iter().map(|p| (p.1 - mean_y).powi(2)).sum();
    let ss_res: f64 = points
        .iter()
        .map(|p| (p.1 - (intercept + slope * p.0)).powi(2))
        .sum();
    let r_squared = if ss_tot == 0.0 {
        1.0
    } else {
        1.0 - ss_res / ss_tot
    };
    Some(LinearFit {
        x_us: intercept,
        y_us_per_kib: slope,
        r_squared,
        points: n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_on_a_line() {
        // The thesis's figures: X = 335 µs, Y = 4 µs per KiB.
        let pts: Vec<(f64, f64)> = [4.0, 8.0, 64.0, 512.0, 1024.0]
            .iter()
            .map(|&s| (s, 335.0 + 4.0 * s))
            .collect();
        let f = fit_linear(&pts).unwrap();
        assert!((f.x_us - 335.0).abs() < 1e-9, "{f:?}");
        assert!((f.y_us_per_kib - 4.0).abs() < 1e-12, "{f:?}");
        assert!((f.r_squared - 1.0).abs() < 1e-12);
        assert_eq!(f.points, 5);
        assert!((f.time_us(128.0) - 847.0).abs() < 1e-9);
    }

    #[test]
    fn symmetric_noise_leaves_the_line() {
        // Symmetric noise around y = 10 + 2x leaves the fit unchanged.
        let pts = [(1.0, 13.0), (1.0, 11.0), (3.0, 17.0), (3.0, 15.0)];
        let f = fit_linear(&pts).unwrap();
        assert!(
            (f.x_us - 10.0).abs() < 1e-9 && (f.y_us_per_kib - 2.0).abs() < 1e-9,
            "{f:?}"
        );
        assert!(f.r_squared < 1.0 && f.r_squared > 0.5);
    }

    #[test]
    fn one_disturbed_point_does_not_move_the_line() {
        // Table 3.1's line, with the 1 MiB point 20% slow (a burst of other work).
        let mut pts: Vec<(f64, f64)> = [4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0]
            .iter()
            .map(|&s| (s, 335.0 + 4.0 * s))
            .collect();
        pts[8].1 *= 1.2;
        let f = fit_linear(&pts).unwrap();
        assert!((f.x_us - 335.0).abs() < 1e-9, "{f:?}");
        assert!((f.y_us_per_kib - 4.0).abs() < 1e-9, "{f:?}");
        assert!(f.r_squared < 1.0);
    }

    #[test]
    fn degenerate_inputs() {
        assert!(fit_linear(&[]).is_none());
        assert!(fit_linear(&[(1.0, 2.0)]).is_none());
        assert!(fit_linear(&[(4.0, 2.0), (4.0, 3.0)]).is_none());
    }
}
