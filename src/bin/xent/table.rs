//! `xent bench`'s table on stdout, and its notes.

use crate::bench::{Report, OVERHEAD_FACTOR};
use crate::error::Result;
use crate::measure::MIN_SAMPLE;

/// A percentage, `ovh` where the roofline measures overhead, `-` where there is none.
fn pct(v: Option<f64>, overhead: bool) -> String {
    match (v, overhead) {
        (Some(v), _) => format!("{v:.0}"),
        (None, true) => "ovh".into(),
        (None, false) => "-".into(),
    }
}

/// Prints the results, one row per op and shape, then what the marks mean.
pub fn print(report: &Report) -> Result<()> {
    let adapter = &report.adapter;
    out!(
        "xent bench on {} ({}, {})",
        adapter.name,
        adapter.backend,
        adapter.device_type
    )?;
    out!(
        "{:<20} {:<27} {:>12} {:>10} {:>10} {:>10} {:>10} {:>6} {:>8} {:>6} {:>7} {:>7} {:>9}",
        "impl",
        "op",
        "shape",
        "median ms",
        "min ms",
        "max ms",
        "kernel ms",
        "calls",
        "GB/s",
        "B/lgt",
        "%copy",
        "%read",
        "max err"
    )?;
    let opt = |v: Option<f64>, prec: usize| v.map_or("-".to_string(), |v| format!("{v:.prec$}"));
    for r in &report.results {
        let shape = match r.n * r.c {
            0 => "-".to_string(),
            _ => format!("{}x{}", r.n, r.c),
        };
        out!(
            "{:<20} {:<27} {:>12} {:>10.3} {:>10.3} {:>10.3} {:>10} {:>6} {:>8.2} {:>6.3} {:>7} {:>7} {:>9}",
            r.implementation,
            r.op,
            shape,
            r.median_ms,
            r.min_ms,
            r.max_ms,
            opt(r.kernel_median_ms, 3),
            r.calls_per_sample,
            r.gb_per_s,
            r.bytes_per_logit,
            pct(r.pct_of_copy, r.overhead_bound),
            pct(r.pct_of_read, r.overhead_bound),
            r.max_abs_err.map_or("-".to_string(), |e| format!("{e:.1e}")),
        )?;
    }
    notes(report)
}

/// What the floor, `calls` and `ovh` mean, when they appear.
fn notes(report: &Report) -> Result<()> {
    if let Some(floor) = report.floor_ms {
        out!("floor (an empty submission's round trip, the least any call takes): {floor:.3} ms")?;
    }
    if report.results.iter().any(|r| r.calls_per_sample > 1) {
        out!(
            "calls: calls shorter than {} ms are timed back to back, that many per sample; \
             times are per call",
            MIN_SAMPLE.as_millis()
        )?;
    }
    if report.results.iter().any(|r| r.overhead_bound) {
        out!(
            "ovh: at this shape the copy takes under {OVERHEAD_FACTOR}x the floor, so it \
             measures overhead, not bandwidth: no % of copy or read is given"
        )?;
    }
    Ok(())
}
