//! Thesis section 3.2, Table 3.1: `Time cost = X + Y * Size`, fitted by ordinary least squares
//! over (request size, per-request time) points. X is the constant cost of a request in µs,
//! Y the cost per KiB in µs.

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

/// Least-squares line through `(size_kib, time_us)` points; `None` with fewer than two distinct
/// sizes.
pub fn fit_linear(points: &[(f64, f64)]) -> Option<LinearFit> {
    let n = points.len();
    if n < 2 {
        return None;
    }
    let nf = n as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / nf;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / nf;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let slope = sxy / sxx;
    let intercept = mean_y - slope * mean_x;
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
    fn least_squares_on_noisy_points() {
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
    fn degenerate_inputs() {
        assert!(fit_linear(&[]).is_none());
        assert!(fit_linear(&[(1.0, 2.0)]).is_none());
        assert!(fit_linear(&[(4.0, 2.0), (4.0, 3.0)]).is_none());
    }
}
