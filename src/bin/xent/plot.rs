//! `xent bench --plot`: GB/s against C, one series per op and N (colour: the op, marker: N),
//! with min/max whiskers, the copy/read/write roofline in greys and the legend beside the
//! data.

use crate::bench::{Report, Row};
use crate::error::{CliError, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

/// The whole image, and the width of the legend panel on its right.
const SIZE: (u32, u32) = (1150, 650);
const LEGEND_W: u32 = 300;

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, LogCoord<f64>>>;

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
pub fn render(path: &Path, report: &Report) -> Result<String> {
    check_path(path)?;
    let mut svg = String::new();
    draw(&mut svg, report).map_err(|e| CliError::Arg(format!("plot: {e}")))?;
    Ok(svg)
}

/// Each op's colour, dark enough to read on white; the roofline in greys.
fn colour(op: &str) -> RGBColor {
    match op {
        "cross-entropy" => RGBColor(31, 119, 180),
        "cross-entropy-grad" => RGBColor(214, 39, 40),
        "cross-entropy-grad-in-place" => RGBColor(148, 103, 189),
        "nll-loss" => RGBColor(140, 86, 75),
        "log-softmax" => RGBColor(44, 150, 44),
        "softmax" => RGBColor(220, 110, 0),
        "copy" => RGBColor(0, 0, 0),
        "read" => RGBColor(100, 100, 100),
        _ => RGBColor(160, 160, 160),
    }
}

/// One series: roofline or not, an impl, an op and a batch size N.
type Key = (bool, String, String, usize);

/// log2 of C: the x coordinate.
fn x_of(c: usize) -> f64 {
    (c as f64).log2()
}

/// Draws marker `kind` (0..8: circle, triangle, square, cross; hollow from 4) at `p`.
fn marker<DB: DrawingBackend, C: Into<(i32, i32)>>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    kind: usize,
    p: C,
    colour: RGBColor,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let p = p.into();
    let style = match kind < 4 {
        true => colour.filled(),
        false => colour.stroke_width(2),
    };
    match kind % 4 {
        0 => area.draw(&Circle::new(p, 4, style)),
        1 => area.draw(&TriangleMarker::new(p, 5, style)),
        2 => area.draw(&Rectangle::new(
            [(p.0 - 4, p.1 - 4), (p.0 + 4, p.1 + 4)],
            style,
        )),
        _ => area.draw(&Cross::new(p, 4, colour.stroke_width(2))),
    }
}

fn draw(svg: &mut String, report: &Report) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let rows: Vec<&Row> = report
        .results
        .iter()
        .filter(|r| r.gb_per_s.is_finite() && r.gb_per_s > 0.0 && r.n * r.c > 0)
        .collect();
    let mut ns: Vec<usize> = rows.iter().map(|r| r.n).collect();
    ns.sort_unstable();
    ns.dedup();
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let (plot, legend) = root.split_horizontally(SIZE.0 - LEGEND_W);
    let adapter = &report.adapter;
    let floor = report
        .floor_ms
        .map_or(String::new(), |f| format!("; floor {f:.3} ms"));
    let title = format!(
        "xent bench: {} ({}, {}){floor}",
        adapter.name, adapter.backend, adapter.device_type
    );
    let mut chart = axes(&plot, &rows, title)?;
    // The ops first, the roofline after them.
    let mut series: BTreeMap<Key, Vec<&Row>> = BTreeMap::new();
    for r in &rows {
        let roofline = matches!(r.op.as_str(), "copy" | "read" | "write");
        let key = (roofline, r.implementation.clone(), r.op.clone(), r.n);
        series.entry(key).or_default().push(r);
    }
    let one_impl = rows
        .iter()
        .all(|r| r.implementation == rows[0].implementation);
    let mut entries = Vec::new();
    for ((_, imp, op, n), mut points) in series {
        points.sort_by_key(|r| r.c);
        let kind = ns.iter().position(|&v| v == n).unwrap_or(0) % 8;
        draw_series(&mut chart, &plot, &points, colour(&op), kind)?;
        let label = match one_impl {
            true => format!("{op} N={n}"),
            false => format!("{op} N={n} ({})", imp.strip_prefix("xent-").unwrap_or(&imp)),
        };
        entries.push((label, colour(&op), kind));
    }
    draw_legend(&legend, &entries)?;
    root.present()?;
    Ok(())
}

/// The axes: log2 C with a tick at every power of two, GB/s on a log scale.
fn axes<'a, 'b>(
    plot: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    rows: &[&Row],
    title: String,
) -> std::result::Result<Chart<'a, 'b>, Box<dyn std::error::Error>> {
    let xs = rows.iter().map(|r| x_of(r.c));
    let (x_lo, x_hi) = xs.fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(x), hi.max(x)));
    let (x_lo, x_hi) = match x_lo <= x_hi {
        true => (x_lo.floor() - 0.5, x_hi.ceil() + 0.5),
        false => (0.0, 20.0),
    };
    let ys = rows
        .iter()
        .flat_map(|r| [gb(r, r.max_ms), gb(r, r.min_ms), r.gb_per_s]);
    let ys = ys.filter(|v| v.is_finite() && *v > 0.0);
    let (y_lo, y_hi) = ys.fold((f64::MAX, f64::MIN), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let (y_lo, y_hi) = match y_lo <= y_hi {
        true => (y_lo / 1.5, y_hi * 1.5),
        false => (0.01, 100.0),
    };
    let mut chart = ChartBuilder::on(plot)
        .caption(title, ("sans-serif", 18))
        .margin(15)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(x_lo..x_hi, (y_lo..y_hi).log_scale())?;
    let ticks = (x_hi - x_lo).round() as usize + 1;
    chart
        .configure_mesh()
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(210, 210, 210))
        .x_labels(ticks)
        .x_label_formatter(&|v| match (v.fract().abs() < 1e-6, 2f64.powf(*v)) {
            (true, c) if c >= 1024.0 => format!("{}k", (c / 1024.0).round()),
            (true, c) => format!("{}", c.round()),
            _ => String::new(),
        })
        .y_labels(10)
        .y_label_formatter(&|v| format!("{v}"))
        .x_desc("classes C (log scale; k = 1024)")
        .y_desc("GB/s (logits bytes / median end-to-end time; log scale)")
        .label_style(("sans-serif", 14))
        .draw()?;
    Ok(chart)
}

/// GB/s of `r` at a time of `ms`.
fn gb(r: &Row, ms: f64) -> f64 {
    r.gb_per_s * r.median_ms / ms
}

/// One series: its line, its min/max whiskers (GB/s at the slowest and fastest sample) and
/// its markers.
fn draw_series(
    chart: &mut Chart,
    plot: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    points: &[&Row],
    colour: RGBColor,
    kind: usize,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let line: Vec<(f64, f64)> = points.iter().map(|r| (x_of(r.c), r.gb_per_s)).collect();
    chart.draw_series(LineSeries::new(line.clone(), colour.stroke_width(2)))?;
    let cap = 0.08;
    for r in points {
        let (x, lo, hi) = (x_of(r.c), gb(r, r.max_ms), gb(r, r.min_ms));
        let whisker = [
            vec![(x, lo), (x, hi)],
            vec![(x - cap, lo), (x + cap, lo)],
            vec![(x - cap, hi), (x + cap, hi)],
        ];
        chart.draw_series(
            whisker
                .into_iter()
                .map(|p| PathElement::new(p, colour.stroke_width(1))),
        )?;
    }
    for p in line {
        let at = chart.backend_coord(&p);
        marker(plot, kind, at, colour)?;
    }
    Ok(())
}

/// The legend, in its own panel beside the data: one entry per series, then how to read it.
fn draw_legend(
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    entries: &[(String, RGBColor, usize)],
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let font = ("sans-serif", 13).into_font();
    let step = ((SIZE.1 as i32 - 110) / entries.len().max(1) as i32).clamp(8, 18);
    let mut y = 45;
    for (label, colour, kind) in entries {
        area.draw(&PathElement::new(
            vec![(8, y), (38, y)],
            colour.stroke_width(2),
        ))?;
        marker(area, *kind, (23, y), *colour)?;
        area.draw(&Text::new(label.clone(), (46, y - 7), font.clone()))?;
        y += step;
    }
    let notes = [
        "colour: op; marker: N",
        "whiskers: fastest and slowest sample",
        "greys: copy / read / write roofline",
    ];
    for (i, note) in notes.iter().enumerate() {
        let at = (8, SIZE.1 as i32 - 60 + 16 * i as i32);
        area.draw(&Text::new(*note, at, font.clone()))?;
    }
    Ok(())
}
