//! `xent bench --plot`: GB/s against C per op and impl, with the copy roofline.

use crate::bench::{AdapterJson, Row};
use crate::error::{CliError, Result};
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

/// Refuses a --plot path that is not `.svg`.
pub fn check_path(path: &Path) -> Result<()> {
    if path.extension().and_then(|e| e.to_str()) != Some("svg") {
        return Err(CliError::Arg(format!(
            "--plot {}: only .svg is supported",
            path.display()
        )));
    }
    Ok(())
}

/// The plot as SVG text, for `path` (written by the caller with the other outputs).
pub fn render(path: &Path, adapter: &AdapterJson, rows: &[Row]) -> Result<String> {
    check_path(path)?;
    let mut svg = String::new();
    draw(&mut svg, adapter, rows)?;
    Ok(svg)
}

fn draw(svg: &mut String, adapter: &AdapterJson, rows: &[Row]) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| CliError::Arg(format!("plot: {e}"));
    let finite = rows
        .iter()
        .filter(|r| r.gb_per_s.is_finite() && r.gb_per_s > 0.0);
    let (c_min, c_max) = finite.clone().fold((f64::MAX, 1.0f64), |(lo, hi), r| {
        (lo.min(r.c as f64), hi.max(r.c as f64))
    });
    let y_max = finite.clone().map(|r| r.gb_per_s).fold(0.0, f64::max) * 1.15 + 1e-3;
    let (x_lo, x_hi) = (c_min.min(c_max) / 1.5, c_max * 1.5);
    let root = SVGBackend::with_string(svg, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let title = format!(
        "xent bench: {} ({}, {})",
        adapter.name, adapter.backend, adapter.device_type
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d((x_lo..x_hi).log_scale(), 0.0..y_max)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .x_labels(6)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .x_desc("classes C (log scale)")
        .y_desc("GB/s (logits bytes / median end-to-end time)")
        .draw()
        .map_err(|e| err(&e))?;
    let mut series: BTreeMap<(String, String), Vec<(f64, f64)>> = BTreeMap::new();
    for r in finite {
        series
            .entry((r.implementation.clone(), r.op.clone()))
            .or_default()
            .push((r.c as f64, r.gb_per_s));
    }
    for (i, ((imp, op), mut points)) in series.into_iter().enumerate() {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let roofline = matches!(op.as_str(), "copy" | "read" | "write");
        let color = match op.as_str() {
            "copy" => BLACK.to_rgba(),
            "read" => RGBColor(128, 128, 128).to_rgba(),
            "write" => RGBColor(190, 190, 190).to_rgba(),
            _ => Palette99::pick(i).to_rgba(),
        };
        let style = ShapeStyle {
            color,
            filled: true,
            stroke_width: if roofline { 3 } else { 2 },
        };
        let label = format!("{imp} {op}{}", if roofline { " (roofline)" } else { "" });
        let line = if roofline {
            style.stroke_width(1)
        } else {
            style
        };
        chart
            .draw_series(LineSeries::new(points.clone(), line))
            .map_err(|e| err(&e))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, style)))
            .map_err(|e| err(&e))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
