//! The charts of thesis Figures 3.1 and 6.1 as SVG: for every (op, queue depth) a row of two
//! panels, throughput (MB/s) against block size on a log2 axis with one line per mode, and the
//! ratio of each mode to the physical disk.

use std::path::Path;

use plotters::coord::combinators::IntoLogRange;
use plotters::prelude::*;

use super::report::{block_label, BenchReport, Mode};
use super::BenchError;

fn mode_color(mode: Mode) -> RGBColor {
    match mode {
        Mode::Physical => RGBColor(0x22, 0x22, 0x22),
        Mode::Virtual => RGBColor(0xd6, 0x27, 0x28),
        Mode::Parallel => RGBColor(0x1f, 0x77, 0xb4),
    }
}

/// Draws the report's chart into an SVG file at `path`.
pub fn write_chart_svg(report: &BenchReport, path: &Path) -> Result<(), BenchError> {
    let series = report.series();
    if series.is_empty() {
        return Err(BenchError::Chart("no points to draw".into()));
    }
    let rows = series.len();
    let root = SVGBackend::new(path, (1200, 420 * rows as u32)).into_drawing_area();
    draw(report, &root).map_err(|e| BenchError::Chart(e.to_string()))?;
    root.present()
        .map_err(|e| BenchError::Chart(e.to_string()))?;
    Ok(())
}

fn draw<DB: DrawingBackend>(
    report: &BenchReport,
    root: &DrawingArea<DB, plotters::coord::Shift>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let series = report.series();
    let panels = root.split_evenly((series.len(), 2));
    let sizes = report.block_sizes();
    let kib = |bs: u32| f64::from(bs) / 1024.0;
    let x_lo = kib(*sizes.first().expect("non-empty")) / 1.2;
    let x_hi = kib(*sizes.last().expect("non-empty")) * 1.2;
    let modes = report.modes();
    let x_label = |v: &f64| block_label((v * 1024.0).round() as u32);

    for (row, &(op, qd)) in series.iter().enumerate() {
        let tput = &panels[row * 2];
        let ratio = &panels[row * 2 + 1];
        let max_mb = report
            .points
            .iter()
            .filter(|p| p.op == op && p.queue_depth == qd)
            .map(|p| p.mb_per_s)
            .fold(1.0f64, f64::max);
        let mut chart = ChartBuilder::on(tput)
            .caption(format!("{op} throughput, QD{qd}"), ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((x_lo..x_hi).log_scale().base(2.0), 0.0..max_mb * 1.1)?;
        chart
            .configure_mesh()
            .x_desc("block size")
            .y_desc("MB/s")
            .x_label_formatter(&x_label)
            .draw()?;
        for &m in &modes {
            let pts: Vec<(f64, f64)> = sizes
                .iter()
                .filter_map(|&bs| report.point(m, op, qd, bs).map(|p| (kib(bs), p.mb_per_s)))
                .collect();
            let color = mode_color(m);
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
                .label(report.mode_label(m))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;

        let max_ratio = modes
            .iter()
            .flat_map(|&m| {
                sizes
                    .iter()
                    .filter_map(move |&bs| report.ratio_to_physical(m, op, qd, bs))
            })
            .fold(1.0f64, f64::max);
        let mut rchart = ChartBuilder::on(ratio)
            .caption(
                format!("{op} ratio to physical, QD{qd}"),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((x_lo..x_hi).log_scale().base(2.0), 0.0..max_ratio * 1.15)?;
        rchart
            .configure_mesh()
            .x_desc("block size")
            .y_desc("ratio")
            .x_label_formatter(&x_label)
            .draw()?;
        for &m in &modes {
            let pts: Vec<(f64, f64)> = sizes
                .iter()
                .filter_map(|&bs| {
                    report
                        .ratio_to_physical(m, op, qd, bs)
                        .map(|r| (kib(bs), r))
                })
                .collect();
            let color = mode_color(m);
            rchart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
                .label(report.mode_label(m))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            rchart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
        }
        rchart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    Ok(())
}
