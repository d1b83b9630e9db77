//! `xent bench`: a sweep over shapes and ops, validated against the CPU reference before it
//! is timed, with GB/s beside the adapter's own copy and read bandwidth; `--op copy` also
//! reports its write bandwidth.

use crate::data::{self, Inputs, Synth};
use crate::eval::InputDtype;
use crate::DeviceKind;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use wgpu_xent::compare::compare;
use wgpu_xent::traffic::BenchOp;
use wgpu_xent::{cpu, BackwardOptions, Context, DType, LossOptions, Result, XentError};

/// Shapes timed when none is given (skipped where memory does not allow).
pub const DEFAULT_SHAPES: &[&str] = &[
    "4096x1024",
    "8192x4096",
    "1024x32000",
    "256x65536",
    "64x262144",
    "4096x131072",
];

/// Above this many logits, validation runs on a sample of rows instead of the whole tensor.
const FULL_VALIDATION_MAX: usize = 1 << 27;
/// Rows in that sample.
const SAMPLE_ROWS: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OpArg {
    CrossEntropy,
    CrossEntropyGrad,
    /// The fused backward writing the gradient over the logits (f32 only).
    CrossEntropyGradInPlace,
    NllLoss,
    LogSoftmax,
    Softmax,
    /// The adapter's buffer copy, a trivial read kernel and a trivial write kernel: the roofline.
    Copy,
}

#[derive(Args)]
pub struct BenchArgs {
    /// Ops to time (repeatable; default: cross-entropy, cross-entropy-grad, log-softmax, copy).
    #[arg(long = "op", value_enum)]
    ops: Vec<OpArg>,
    /// Shapes NxC (repeatable; default: a sweep up to 4096x131072).
    #[arg(long = "shape")]
    shapes: Vec<String>,
    /// The logits' dtype.
    #[arg(long, value_enum, default_value_t = InputDtype::F32)]
    dtype: InputDtype,
    /// Timed runs per configuration.
    #[arg(long, default_value_t = 10)]
    iters: usize,
    /// Untimed runs before them.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// The GPU, or the f64 CPU reference.
    #[arg(long, value_enum, default_value_t = DeviceKind::Gpu)]
    device: DeviceKind,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw GB/s against C here (.svg).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Split rows across workgroups when a call has fewer rows than this (default: the
    /// context's, 4 on CPU adapters and 1024 on GPUs).
    #[arg(long)]
    min_workgroups: Option<u32>,
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
}

#[derive(Serialize)]
struct Report {
    adapter: AdapterJson,
    results: Vec<Row>,
}

/// Median, min and max in milliseconds.
fn stats(times: &[Duration]) -> (f64, f64, f64) {
    let mut ms: Vec<f64> = times.iter().map(|t| t.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let median = if ms.is_empty() {
        f64::NAN
    } else if ms.len() % 2 == 1 {
        ms[ms.len() / 2]
    } else {
        (ms[ms.len() / 2 - 1] + ms[ms.len() / 2]) / 2.0
    };
    (
        median,
        *ms.first().unwrap_or(&f64::NAN),
        *ms.last().unwrap_or(&f64::NAN),
    )
}

/// Timings of one configuration: wall times and, where measured, kernel times.
struct Timing {
    wall: Vec<Duration>,
    kernel: Vec<Duration>,
}

/// Runs `f` `warmup` times, then `iters` times, timing each.
fn time(
    warmup: usize,
    iters: usize,
    mut f: impl FnMut() -> Result<Option<Duration>>,
) -> Result<Timing> {
    for _ in 0..warmup {
        f()?;
    }
    let mut t = Timing {
        wall: vec![],
        kernel: vec![],
    };
    for _ in 0..iters {
        let start = Instant::now();
        let kernel = f()?;
        t.wall.push(start.elapsed());
        t.kernel.extend(kernel);
    }
    Ok(t)
}

fn max_err(ours: &[f32], reference: &[f32]) -> f64 {
    let c = compare(ours, reference, 0.0, 0.0);
    if c.max_ulp == u64::MAX {
        f64::INFINITY
    } else {
        c.max_abs
    }
}

/// The first `rows` rows of an [N, C] input, to validate huge shapes on.
fn sample(inp: &Inputs, rows: usize) -> Inputs {
    let c = inp.shape[1];
    let rows = rows.min(inp.shape[0]);
    Inputs {
        x: inp.x[..rows * c].to_vec(),
        half: inp.half.as_ref().map(|(b, d)| (b[..rows * c].to_vec(), *d)),
        shape: vec![rows, c],
        classes: inp.classes[..rows].to_vec(),
        probs: None,
        tshape: vec![rows],
        weight: inp.weight.clone(),
        target_given: true,
    }
}

pub fn run(a: &BenchArgs) -> Result<()> {
    let dtype = DType::from(a.dtype);
    let elem = dtype.size();
    let dtype_name = match dtype {
        DType::F32 => "f32",
        DType::F16 => "f16",
        DType::BF16 => "bf16",
    };
    let ops = if a.ops.is_empty() {
        vec![
            OpArg::CrossEntropy,
            OpArg::CrossEntropyGrad,
            OpArg::LogSoftmax,
            OpArg::Copy,
        ]
    } else {
        a.ops.clone()
    };
    let shape_args: Vec<String> = if a.shapes.is_empty() {
        DEFAULT_SHAPES.iter().map(|s| s.to_string()).collect()
    } else {
        a.shapes.clone()
    };
    let mut shapes = Vec::new();
    for s in &shape_args {
        let shape = data::parse_shape(s)?;
        if shape.len() != 2 {
            return Err(XentError::InvalidArgument(format!(
                "--shape {s}: bench takes NxC"
            )));
        }
        // Input, device copy, output, staging and reference: about six logits-sized arrays.
        let need = shape[0] as u64 * shape[1] as u64 * 4 * 6;
        match available_memory() {
            Some(avail) if need > avail && a.shapes.is_empty() => {
                eprintln!(
                    "skipping {s}: needs about {} MiB, {} MiB available",
                    need >> 20,
                    avail >> 20
                );
            }
            _ => shapes.push((shape[0], shape[1])),
        }
    }
    let ctx = match a.device {
        DeviceKind::Gpu => Some(Context::with_options(wgpu_xent::ContextOptions {
            min_workgroups: a.min_workgroups,
            ..Default::default()
        })?),
        DeviceKind::Cpu => None,
    };
    let adapter = match &ctx {
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
    };
    let implementation = match a.device {
        DeviceKind::Gpu => "xent-gpu",
        DeviceKind::Cpu => "xent-cpu-reference",
    };

    let bar = ProgressBar::new((shapes.len() * ops.len()) as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed_precise}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut rows = Vec::new();
    for &(n, c) in &shapes {
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
        let roof = roofline(ctx.as_ref(), &inp, elem, a)?;
        let bytes = (n * c * elem) as f64;
        let copy_gbs = bytes / roof.copy.wall.0 / 1e6;
        let read_gbs = bytes / roof.read.wall.0 / 1e6;
        for &op in &ops {
            let name = op.to_possible_value().map(|v| v.get_name().to_string());
            bar.set_message(format!("{n}x{c} {}", name.unwrap_or_default()));
            let measured = match op {
                OpArg::Copy => vec![roof.copy.clone(), roof.read.clone(), roof.write.clone()],
                _ => vec![bench_op(ctx.as_ref(), op, &inp, a)?],
            };
            for m in measured {
                let (median, min, max) = m.wall;
                let gb = bytes / median / 1e6;
                rows.push(Row {
                    implementation: implementation.into(),
                    op: m.op.name().into(),
                    n,
                    c,
                    dtype: dtype_name.into(),
                    median_ms: median,
                    min_ms: min,
                    max_ms: max,
                    kernel_median_ms: m.kernel,
                    gb_per_s: gb,
                    bytes_per_logit: m.op.bytes_per_logit(c, elem, m.held),
                    pct_of_copy: Some(100.0 * gb / copy_gbs),
                    pct_of_read: Some(100.0 * gb / read_gbs),
                    max_abs_err: m.err,
                });
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    print_table(&adapter, &rows);
    if let Some(path) = &a.json {
        let report = Report {
            adapter,
            results: rows.clone(),
        };
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| XentError::InvalidArgument(format!("JSON: {e}")))?;
        std::fs::write(path, text)?;
        println!("wrote {}", path.display());
        if let Some(plot) = &a.plot {
            crate::plot::draw(plot, &report.adapter, &rows)?;
            println!("wrote {}", plot.display());
        }
    } else if let Some(plot) = &a.plot {
        crate::plot::draw(plot, &adapter, &rows)?;
        println!("wrote {}", plot.display());
    }
    Ok(())
}

/// One measured configuration: wall-time median, min and max (ms), the kernel median (ms)
/// and the max abs error against the CPU reference.
#[derive(Clone)]
struct Measured {
    op: BenchOp,
    wall: (f64, f64, f64),
    kernel: Option<f64>,
    err: Option<f64>,
    /// The call kept its rows in workgroup memory (a `*Held` kernel): one read, not two.
    held: bool,
}

impl Measured {
    fn new(op: BenchOp, t: &Timing, scale: f64, err: Option<f64>) -> Self {
        let (m, lo, hi) = stats(&t.wall);
        let kernel = (!t.kernel.is_empty()).then(|| stats(&t.kernel).0 * scale);
        Self {
            op,
            wall: (m * scale, lo * scale, hi * scale),
            kernel,
            err,
            held: false,
        }
    }
}

/// The adapter's copy, read and write bandwidth at one size.
struct Roofline {
    copy: Measured,
    read: Measured,
    write: Measured,
}

fn roofline(ctx: Option<&Context>, inp: &Inputs, elem: usize, a: &BenchArgs) -> Result<Roofline> {
    let (copy, read, write, scale) = match ctx {
        Some(ctx) => {
            let bw = ctx.prepare_bandwidth((inp.x.len() * elem) as u64)?;
            // Timed on at most one binding; scaled to the logits' size.
            let scale = (inp.x.len() * elem) as f64 / bw.bytes() as f64;
            let copy = time(a.warmup, a.iters, || bw.copy().map(|_| None))?;
            let read = time(a.warmup, a.iters, || bw.read().map(|(_, k)| k))?;
            let write = time(a.warmup, a.iters, || bw.write().map(|(_, k)| k))?;
            (copy, read, write, scale)
        }
        None => {
            let copy = time(a.warmup, a.iters, || {
                std::hint::black_box(inp.x.clone());
                Ok(None)
            })?;
            let read = time(a.warmup, a.iters, || {
                std::hint::black_box(inp.x.iter().sum::<f32>());
                Ok(None)
            })?;
            let mut out = vec![0f32; inp.x.len()];
            let write = time(a.warmup, a.iters, || {
                out.fill(std::hint::black_box(1.0));
                std::hint::black_box(&out);
                Ok(None)
            })?;
            (copy, read, write, 1.0)
        }
    };
    Ok(Roofline {
        copy: Measured::new(BenchOp::Copy, &copy, scale, None),
        read: Measured::new(BenchOp::Read, &read, scale, None),
        write: Measured::new(BenchOp::Write, &write, scale, None),
    })
}

/// Validates one op against the CPU reference, then times it. Returns the max abs error.
fn bench_op(ctx: Option<&Context>, op: OpArg, inp: &Inputs, a: &BenchArgs) -> Result<Measured> {
    let opts = LossOptions::default();
    let full = inp.x.len() <= FULL_VALIDATION_MAX;
    let check = if full {
        None
    } else {
        Some(sample(inp, SAMPLE_ROWS))
    };
    let val = check.as_ref().unwrap_or(inp);
    let b = BackwardOptions::default();
    let bop = match op {
        OpArg::CrossEntropy => BenchOp::CrossEntropy,
        OpArg::CrossEntropyGrad => BenchOp::CrossEntropyGrad,
        OpArg::CrossEntropyGradInPlace => BenchOp::CrossEntropyGradInPlace,
        OpArg::NllLoss => BenchOp::NllLoss,
        OpArg::LogSoftmax => BenchOp::LogSoftmax,
        OpArg::Softmax => BenchOp::Softmax,
        OpArg::Copy => unreachable!("copy is the roofline"),
    };
    let Some(ctx) = ctx else {
        // The CPU reference, timed the same way.
        let (x, t) = (inp.input(), inp.target());
        let timing = time(a.warmup, a.iters, || {
            match op {
                OpArg::CrossEntropy => drop(cpu::cross_entropy(x, t, &opts)?),
                OpArg::CrossEntropyGrad | OpArg::CrossEntropyGradInPlace => {
                    drop(cpu::cross_entropy_backward(x, t, &opts, &b)?)
                }
                OpArg::NllLoss => drop(cpu::nll_loss(x, t, &opts)?),
                OpArg::LogSoftmax => drop(cpu::log_softmax(x, 1)?),
                OpArg::Softmax => drop(cpu::softmax(x, 1)?),
                OpArg::Copy => {}
            }
            Ok(None)
        })?;
        return Ok(Measured::new(bop, &timing, 1.0, None));
    };
    let (vx, vt) = (val.input(), val.target());
    let held = |labels: Vec<String>| labels.iter().any(|l| l.contains("Held"));
    let (timing, err, held) = match op {
        OpArg::CrossEntropy
        | OpArg::NllLoss
        | OpArg::CrossEntropyGrad
        | OpArg::CrossEntropyGradInPlace => {
            let grad = matches!(op, OpArg::CrossEntropyGrad | OpArg::CrossEntropyGradInPlace);
            let prepare = |i: &Inputs| match (op, i.input()) {
                (OpArg::NllLoss, x) => ctx.prepare_nll_loss(x, i.target(), &opts),
                (OpArg::CrossEntropyGradInPlace, wgpu_xent::Logits::F32(x)) => {
                    ctx.prepare_cross_entropy_in_place(x, i.target(), &opts)
                }
                (OpArg::CrossEntropyGradInPlace, _) => Err(XentError::Unsupported(
                    "cross-entropy-grad-in-place needs f32 logits".into(),
                )),
                (_, x) => ctx.prepare_cross_entropy(x, i.target(), &opts, grad),
            };
            let prepared = prepare(inp)?;
            // Validate (on the sample for huge shapes), then time the full shape.
            let err = {
                let checked = if full { None } else { Some(prepare(val)?) };
                let p = checked.as_ref().unwrap_or(&prepared);
                let (ours, _) = p.run_timed()?;
                let mut err = match op {
                    OpArg::NllLoss => max_err(&ours.loss.data, &cpu::nll_loss(vx, vt, &opts)?.data),
                    _ => max_err(&ours.loss.data, &cpu::cross_entropy(vx, vt, &opts)?.data),
                };
                if grad {
                    let reference = cpu::cross_entropy_backward(vx, vt, &opts, &b)?;
                    let g = reference.grad.map(|g| g.data).unwrap_or_default();
                    err = err.max(max_err(&p.read_grad()?, &g));
                }
                err
            };
            let timing = time(a.warmup, a.iters, || prepared.run_timed().map(|(_, k)| k))?;
            (timing, err, held(prepared.dispatch_labels()))
        }
        OpArg::LogSoftmax | OpArg::Softmax => {
            let log = op == OpArg::LogSoftmax;
            let prepared = ctx.prepare_softmax(inp.input(), 1, log)?;
            let err = {
                let checked = if full {
                    None
                } else {
                    Some(ctx.prepare_softmax(vx, 1, log)?)
                };
                let (ours, _) = checked.as_ref().unwrap_or(&prepared).run_timed()?;
                let reference = if log {
                    cpu::log_softmax(vx, 1)?
                } else {
                    cpu::softmax(vx, 1)?
                };
                max_err(&ours.data, &reference.data)
            };
            let timing = time(a.warmup, a.iters, || prepared.run_timed().map(|(_, k)| k))?;
            (timing, err, held(prepared.dispatch_labels()))
        }
        OpArg::Copy => unreachable!("copy is the roofline"),
    };
    Ok(Measured {
        held,
        ..Measured::new(bop, &timing, 1.0, Some(err))
    })
}

fn print_table(adapter: &AdapterJson, rows: &[Row]) {
    println!(
        "xent bench on {} ({}, {})",
        adapter.name, adapter.backend, adapter.device_type
    );
    println!(
        "{:<20} {:<27} {:>12} {:>10} {:>10} {:>10} {:>10} {:>8} {:>6} {:>7} {:>7} {:>9}",
        "impl",
        "op",
        "shape",
        "median ms",
        "min ms",
        "max ms",
        "kernel ms",
        "GB/s",
        "B/lgt",
        "%copy",
        "%read",
        "max err"
    );
    let opt = |v: Option<f64>, prec: usize| v.map_or("-".to_string(), |v| format!("{v:.prec$}"));
    for r in rows {
        println!(
            "{:<20} {:<27} {:>12} {:>10.3} {:>10.3} {:>10.3} {:>10} {:>8.2} {:>6.3} {:>7} {:>7} {:>9}",
            r.implementation,
            r.op,
            format!("{}x{}", r.n, r.c),
            r.median_ms,
            r.min_ms,
            r.max_ms,
            opt(r.kernel_median_ms, 3),
            r.gb_per_s,
            r.bytes_per_logit,
            opt(r.pct_of_copy, 0),
            opt(r.pct_of_read, 0),
            r.max_abs_err.map_or("-".to_string(), |e| format!("{e:.1e}")),
        );
    }
}

/// MemAvailable from /proc/meminfo, in bytes (Linux only).
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
