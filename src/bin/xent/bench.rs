//! `xent bench`: a sweep over shapes and ops, validated against the CPU reference before it
//! is timed, with GB/s beside the adapter's own copy and read bandwidth; `--op copy` also
//! reports its write bandwidth.

use crate::data::{self, Synth};
use crate::error::{CliError, Result};
use crate::eval::InputDtype;
use crate::measure::{self, bench_op, roofline, Measured};
use crate::output::{check_outputs, Staged};
use crate::traffic::BenchOp;
use crate::DeviceKind;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::path::PathBuf;
use wgpu_xent::{Context, DType};

/// Shapes timed when none is given (skipped where memory does not allow): about a minute
/// on lavapipe.
pub const DEFAULT_SHAPES: &[&str] = &[
    "64x1024",
    "4096x1024",
    "8192x4096",
    "1024x32000",
    "256x65536",
    "64x262144",
];

/// Shapes added by `--large` (2 GiB of f32 logits and more).
pub const LARGE_SHAPES: &[&str] = &["4096x131072"];

/// A roofline (the copy) shorter than this many empty submissions measures overhead, not
/// bandwidth: no percentage of it is given.
pub const OVERHEAD_FACTOR: f64 = 4.0;

#[derive(Args)]
// A negative value after a flag is the value (`--label-smoothing -0.1` reaches the range check).
#[command(allow_negative_numbers = true)]
pub struct BenchArgs {
    /// Ops to time (repeatable; default: cross-entropy, cross-entropy-grad, log-softmax, copy
    /// and noop). matmul and the linear ops are timed in GFLOP/s, apart from the others.
    #[arg(long = "op", value_enum)]
    pub ops: Vec<BenchOp>,
    /// Shapes NxC (repeatable; default: a sweep from 64x1024 to 64x262144, about a minute on
    /// lavapipe); MxNxK for matmul (a[M,K]·b[N,K]ᵀ), NxDxC for the linear ops.
    #[arg(long = "shape")]
    pub shapes: Vec<String>,
    /// Add the large shapes to the default sweep (4096x131072: 2 GiB of f32 logits).
    #[arg(long, conflicts_with = "shapes")]
    pub large: bool,
    /// The logits' dtype.
    #[arg(long, value_enum, default_value_t = InputDtype::F32)]
    pub dtype: InputDtype,
    /// Timed samples per configuration; a sample repeats calls shorter than 2 ms back to
    /// back and reports their mean.
    #[arg(long, default_value_t = 10)]
    pub iters: usize,
    /// Untimed runs before them.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// The GPU, or the f64 CPU reference.
    #[arg(long, value_enum, default_value_t = DeviceKind::Gpu)]
    pub device: DeviceKind,
    /// Write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Draw GB/s against C here (.svg).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Split rows across workgroups when a call has fewer rows than this (default: the
    /// context's, 4 on CPU adapters and 1024 on GPUs).
    #[arg(long)]
    pub min_workgroups: Option<u32>,
    /// Time cross-entropy (NxC) or linear-cross-entropy (NxDxC, the fused linear shards)
    /// over this many class shards (`eval --shards`' devices) beside the unsharded call, and
    /// report the bytes each row exchanges. Needs --shape.
    #[arg(long)]
    pub shards: Option<usize>,
    /// Testing only: adds 1e-2 to the first GPU output before validation, which must fail.
    #[arg(long, hide = true)]
    pub perturb: bool,
}

/// The adapter, as in the JSON.
#[derive(Serialize)]
pub struct AdapterJson {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
}

/// One result row of the JSON (the schema other tools join on).
#[derive(Serialize, Clone)]
pub struct Row {
    #[serde(rename = "impl")]
    pub implementation: String,
    pub op: String,
    pub n: usize,
    pub c: usize,
    pub dtype: String,
    pub median_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    pub kernel_median_ms: Option<f64>,
    pub gb_per_s: f64,
    pub bytes_per_logit: f64,
    pub pct_of_copy: Option<f64>,
    pub pct_of_read: Option<f64>,
    pub max_abs_err: Option<f64>,
    /// Within `xent check`'s default tolerance of the CPU reference (GPU ops only).
    pub valid: Option<bool>,
    /// Calls per timed sample (more than 1 for calls shorter than 2 ms).
    pub calls_per_sample: usize,
    /// The roofline at this shape took under 4 empty submissions: it measures overhead, and
    /// `pct_of_copy` / `pct_of_read` are null.
    pub overhead_bound: bool,
}

#[derive(Serialize)]
pub struct Report {
    pub adapter: AdapterJson,
    /// The adapter's floor: the median empty submission round trip, ms (GPU only).
    pub floor_ms: Option<f64>,
    /// Every validated op agreed with the CPU reference.
    pub valid: bool,
    pub results: Vec<Row>,
}

/// Bytes of host memory per logit a configuration holds: input, device copy, output,
/// staging and reference, about six logits-sized f32 arrays.
const BYTES_PER_LOGIT: u64 = 4 * 6;

/// The shapes to time: those given (each refused when it cannot run), or the default sweep
/// (skipping what does not fit in memory).
fn shapes(a: &BenchArgs) -> Result<Vec<(usize, usize)>> {
    let sweep = a.shapes.is_empty();
    let large = if a.large { LARGE_SHAPES } else { &[] };
    let shape_args: Vec<String> = match sweep {
        true => DEFAULT_SHAPES
            .iter()
            .chain(large)
            .map(|s| s.to_string())
            .collect(),
        false => a.shapes.clone(),
    };
    let mut shapes = Vec::new();
    for s in &shape_args {
        let shape = data::parse_shape(s)?;
        if shape.len() != 2 || shape.contains(&0) {
            return Err(CliError::Arg(format!(
                "--shape {s}: bench takes NxC with N >= 1 and C >= 1"
            )));
        }
        match data::check_fits(s, &shape, BYTES_PER_LOGIT) {
            Err(e) if sweep => warn!("skipping {s}: {e}"),
            Err(e) => return Err(e),
            Ok(()) => shapes.push((shape[0], shape[1])),
        }
    }
    Ok(shapes)
}

pub fn adapter_json(ctx: Option<&Context>) -> AdapterJson {
    match ctx {
        Some(ctx) => {
            let i = ctx.adapter_info();
            AdapterJson {
                name: i.name.clone(),
                backend: format!("{:?}", i.backend),
                device_type: format!("{:?}", i.device_type),
                driver: format!("{} {}", i.driver, i.driver_info).trim().to_string(),
            }
        }
        None => AdapterJson {
            name: format!(
                "CPU reference (f64 accumulation, {} rayon threads)",
                rayon::current_num_threads()
            ),
            backend: "cpu".into(),
            device_type: "Cpu".into(),
            driver: String::new(),
        },
    }
}

/// One result row of `m`, measured at `n`×`c` with `elem`-byte logits; `roof` is the copy's
/// and read's median (None where the roofline measures overhead).
pub fn row(
    ctx: Option<&Context>,
    m: &Measured,
    (n, c): (usize, usize),
    dtype: DType,
    roof: Option<(f64, f64)>,
) -> Row {
    let (median, min, max) = m.wall;
    let bytes = (n * c * dtype.size()) as f64;
    let gb = if n * c == 0 {
        0.0
    } else {
        bytes / median / 1e6
    };
    let pct = |base: f64| roof.map(|_| 100.0 * gb / base);
    Row {
        implementation: match ctx {
            Some(_) => "xent-gpu".into(),
            None => "xent-cpu-reference".into(),
        },
        op: m.op.name().into(),
        n,
        c,
        dtype: format!("{dtype:?}").to_lowercase(),
        median_ms: median,
        min_ms: min,
        max_ms: max,
        kernel_median_ms: m.kernel,
        gb_per_s: gb,
        bytes_per_logit: m.op.bytes_per_logit(c, dtype.size(), m.held),
        pct_of_copy: roof.and_then(|r| pct(r.0)),
        pct_of_read: roof.and_then(|r| pct(r.1)),
        max_abs_err: m.check.map(|v| v.max_abs),
        valid: m.check.map(|v| v.valid),
        calls_per_sample: m.calls,
        overhead_bound: roof.is_none() && m.op != BenchOp::Noop,
    }
}

/// Validates and times every op at one shape, with the roofline first. `floor`: the
/// adapter's empty submission round trip (ms), below which a roofline is overhead.
fn measure_shape(
    ctx: Option<&Context>,
    (n, c): (usize, usize),
    ops: &[BenchOp],
    a: &BenchArgs,
    floor: Option<f64>,
    bar: &ProgressBar,
) -> Result<Vec<Row>> {
    let dtype = DType::from(a.dtype);
    let elem = dtype.size();
    bar.set_message(format!("{n}x{c}: generating data"));
    let synth = Synth {
        seed: 0,
        weighted: false,
        ignore_frac: 0.0,
        ignore_index: -100,
        probs: false,
    };
    let inp = data::quantize(data::synthesize(&[n, c], &synth), dtype);
    // The roofline of this size: copy, read and write bandwidth, measured first.
    bar.set_message(format!("{n}x{c}: copy, read and write roofline"));
    let roof = roofline(ctx, &inp, elem, a)?;
    let bytes = (n * c * elem) as f64;
    let overhead = floor.is_some_and(|f| roof.copy.wall.0 < OVERHEAD_FACTOR * f);
    let base = (!overhead).then(|| {
        (
            bytes / roof.copy.wall.0 / 1e6,
            bytes / roof.read.wall.0 / 1e6,
        )
    });
    let mut rows = Vec::new();
    for &op in ops.iter().filter(|&&op| op != BenchOp::Noop) {
        bar.set_message(format!("{n}x{c} {}", op.name()));
        let measured = match op {
            BenchOp::Copy | BenchOp::Read | BenchOp::Write => {
                vec![roof.copy.clone(), roof.read.clone(), roof.write.clone()]
            }
            _ => vec![bench_op(ctx, op, &inp, a)?],
        };
        rows.extend(measured.iter().map(|m| row(ctx, m, (n, c), dtype, base)));
        bar.inc(1);
    }
    Ok(rows)
}

/// Writes --json and --plot, both or neither.
fn write_outputs(a: &BenchArgs, report: &Report) -> Result<()> {
    let mut staged = Staged::default();
    if let Some(path) = &a.json {
        let text = serde_json::to_string_pretty(report)
            .map_err(|e| CliError::Arg(format!("JSON: {e}")))?;
        staged.stage(path, |w| Ok(w.write_all(text.as_bytes())?))?;
    }
    if let Some(path) = &a.plot {
        let svg = crate::plot::render(path, report)?;
        staged.stage(path, |w| Ok(w.write_all(svg.as_bytes())?))?;
    }
    for path in staged.commit()? {
        out!("wrote {}", path.display())?;
    }
    Ok(())
}

/// The ops asked for, or the default ones.
fn ops(a: &BenchArgs) -> Result<Vec<BenchOp>> {
    let ops = match a.ops.is_empty() {
        true => vec![
            BenchOp::Noop,
            BenchOp::CrossEntropy,
            BenchOp::CrossEntropyGrad,
            BenchOp::LogSoftmax,
            BenchOp::Copy,
        ],
        false => a.ops.clone(),
    };
    if a.device == DeviceKind::Cpu && a.ops.contains(&BenchOp::Noop) {
        return Err(CliError::Arg(
            "--op noop times an empty GPU submission; it has no meaning with --device cpu".into(),
        ));
    }
    match a.device {
        DeviceKind::Cpu => Ok(ops.into_iter().filter(|&o| o != BenchOp::Noop).collect()),
        DeviceKind::Gpu => Ok(ops),
    }
}

/// Runs the bench; `Ok(false)` when an op disagreed with the CPU reference (the results
/// are still printed and written, with `"valid": false`).
pub fn run(a: &BenchArgs) -> Result<bool> {
    if a.iters == 0 {
        return Err(CliError::Arg(
            "--iters 0: at least one timed run is needed".into(),
        ));
    }
    if let Some(plot) = &a.plot {
        crate::plot::check_path(plot)?;
    }
    check_outputs(&[("--json", a.json.as_deref()), ("--plot", a.plot.as_deref())])?;
    if let Some(count) = a.shards {
        return crate::bench_shards::run(a, count);
    }
    if a.ops.iter().any(|&op| crate::bench_linear::is_linear(op)) {
        return crate::bench_linear::run(a);
    }
    let ops = ops(a)?;
    let sized = ops.iter().filter(|&&o| o != BenchOp::Noop).count();
    let shapes = if sized == 0 { vec![] } else { shapes(a)? };
    let ctx = match a.device {
        DeviceKind::Gpu => Some(Context::with_options(wgpu_xent::ContextOptions {
            min_workgroups: a.min_workgroups,
            ..wgpu_xent::ContextOptions::from_env()?
        })?),
        DeviceKind::Cpu => None,
    };
    let floor = ctx.as_ref().map(|ctx| measure::floor(ctx, a)).transpose()?;
    let floor_ms = floor.as_ref().map(|f| f.wall.0);
    let mut rows = Vec::new();
    if let Some(f) = floor.as_ref().filter(|_| ops.contains(&BenchOp::Noop)) {
        rows.push(row(ctx.as_ref(), f, (0, 0), a.dtype.into(), None));
    }
    let bar = ProgressBar::new((shapes.len() * sized) as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed_precise}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    for &shape in &shapes {
        rows.extend(measure_shape(ctx.as_ref(), shape, &ops, a, floor_ms, &bar)?);
    }
    bar.finish_and_clear();
    let report = Report {
        adapter: adapter_json(ctx.as_ref()),
        floor_ms,
        valid: rows.iter().all(|r| r.valid != Some(false)),
        results: rows,
    };
    crate::table::print(&report)?;
    for r in report.results.iter().filter(|r| r.valid == Some(false)) {
        warn!(
            "validation failed: {} at {}x{} differs from the CPU reference beyond tolerance \
             (max abs error {:e})",
            r.op,
            r.n,
            r.c,
            r.max_abs_err.unwrap_or(f64::NAN)
        );
    }
    write_outputs(a, &report)?;
    Ok(report.valid)
}
