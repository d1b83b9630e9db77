//! `xent bench --op matmul | linear-cross-entropy | linear-cross-entropy-grad`: the matrix
//! product `a[M,K]·b[N,K]ᵀ` and linear_cross_entropy (forward, or forward + backward), each
//! validated against the f64 CPU reference before it is timed, as the other ops are, and
//! reported in GFLOP/s. Each linear row also gives its time over that of the matmul of its size
//! (`[N,D]·[C,D]ᵀ`, the logits' product), timed in the same run: the cost of the loss, the
//! chunking and (for the gradient, ideally 3x) the backward's two products.

use crate::bench::{adapter_json, AdapterJson, BenchArgs};
use crate::error::{CliError, Result};
use crate::eval::InputDtype;
use crate::linear::{self, LinearInputs};
use crate::measure::{time, Measured, Validation};
use crate::output::Staged;
use crate::rng::Rng;
use crate::traffic::BenchOp;
use crate::{data::Synth, DeviceKind};
use serde::Serialize;
use wgpu_xent::{
    Context, ContextOptions, DType, Grad, LinearCall, LossOptions, MatmulCall, Tensor,
};

/// Shapes timed when none is given: NxDxC for the linear ops (a matmul takes the same sizes
/// as MxNxK).
pub const DEFAULT_SHAPES: &[&str] = &["64x256x1024", "256x512x2048"];

/// Validation runs on the first rows of a problem, as many as keep it under this many
/// multiply-adds in f64 on the CPU (at least one row).
const VALIDATION_MACS: usize = 1 << 26;

/// Whether `op` is timed here.
pub fn is_linear(op: BenchOp) -> bool {
    matches!(
        op,
        BenchOp::Matmul | BenchOp::LinearCrossEntropy | BenchOp::LinearCrossEntropyGrad
    )
}

/// One result row of the JSON.
#[derive(Serialize)]
pub struct Row {
    #[serde(rename = "impl")]
    pub implementation: String,
    pub op: String,
    /// MxNxK for matmul, NxDxC for the linear ops.
    pub shape: String,
    pub dtype: String,
    pub median_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    pub kernel_median_ms: Option<f64>,
    /// Calls per timed sample (more than 1 for calls shorter than 2 ms).
    pub calls_per_sample: usize,
    /// Floating-point operations of one call: 2MNK; 2NDC forward, 6NDC forward + backward.
    pub flops: f64,
    pub gflop_per_s: f64,
    /// The linear op's median over the median of the matmul of its size, timed in this run.
    pub ratio_to_matmul: Option<f64>,
    pub max_abs_err: f64,
    /// Within `xent check`'s default tolerance of the CPU reference.
    pub valid: bool,
}

#[derive(Serialize)]
pub struct Report {
    pub adapter: AdapterJson,
    /// Every op agreed with the CPU reference.
    pub valid: bool,
    pub results: Vec<Row>,
}

/// Refuses what these ops do not take: other ops in the same run, the CPU, a plot, the
/// large sweep, and 16-bit operands for matmul.
fn check_args(a: &BenchArgs) -> Result<()> {
    let refuse = |m: String| Err(CliError::Arg(m));
    if let Some(op) = a.ops.iter().find(|&&op| !is_linear(op)) {
        return refuse(format!(
            "--op {}: matmul and the linear ops take 3-D shapes and report GFLOP/s; bench them \
             apart from {}",
            a.ops
                .iter()
                .find(|&&op| is_linear(op))
                .map_or("", |o| o.name()),
            op.name()
        ));
    }
    let first = a.ops[0].name();
    let matmul = a.ops.contains(&BenchOp::Matmul);
    if matmul && a.ops.iter().any(|&op| op != BenchOp::Matmul) {
        return refuse(
            "--op matmul takes MxNxK shapes and the linear ops NxDxC: bench them in separate \
             runs (each linear row already gives its ratio to the matmul of its size)"
                .into(),
        );
    }
    if a.device == DeviceKind::Cpu {
        return refuse(format!(
            "--op {first} --device cpu: the CPU reference of {first} is not benchmarked; it \
             times the GPU only"
        ));
    }
    if a.plot.is_some() {
        return refuse(format!(
            "--plot draws GB/s against C; --op {first} reports GFLOP/s and has no plot"
        ));
    }
    if a.large {
        return refuse(format!(
            "--large adds NxC shapes; give --op {first} its shapes with --shape"
        ));
    }
    if matmul && a.dtype != InputDtype::F32 {
        return refuse("--op matmul takes f32 operands only (--dtype f32)".into());
    }
    Ok(())
}

/// The shapes, each as three sizes >= 1 whose host arrays fit in memory.
fn shapes(a: &BenchArgs, form: &str) -> Result<Vec<(usize, usize, usize)>> {
    let given: Vec<String> = match a.shapes.is_empty() {
        true => DEFAULT_SHAPES.iter().map(|s| s.to_string()).collect(),
        false => a.shapes.clone(),
    };
    let mut out = Vec::new();
    for s in &given {
        let (p, q, r) = linear::parse_shape3(s, form)?;
        if p == 0 || q == 0 || r == 0 {
            return Err(CliError::Arg(format!(
                "--shape {s}: bench takes {form} with every size >= 1"
            )));
        }
        // Operands, gradients and the matmul's [N, C] output, as f32, twice over.
        crate::data::check_fits_arrays(s, &[(p, q), (q, r), (p, r)], 4 * 6)?;
        out.push((p, q, r));
    }
    Ok(out)
}

/// A measured call: its timing, flops and validation.
struct Timed {
    m: Measured,
    flops: f64,
}

/// `a[M,K]·b[N,K]ᵀ` with a uniform in [-1, 1) and b in ±1/√K, validated on its first rows.
fn matmul(ctx: &Context, (m, n, k): (usize, usize, usize), a: &BenchArgs) -> Result<Timed> {
    let mut rng = Rng::new(1);
    let mut uniform = |len: usize, s: f32| -> Vec<f32> {
        (0..len).map(|_| (rng.uniform() * 2.0 - 1.0) * s).collect()
    };
    let av = uniform(m * k, 1.0);
    let bv = uniform(n * k, 1.0 / (k as f32).sqrt());
    let p = ctx.prepare(&MatmulCall::new(
        Tensor::new(&av, &[m, k]),
        Tensor::new(&bv, &[n, k]),
    ))?;
    let (ours, _) = p.run_timed()?;
    let rows = m.min((VALIDATION_MACS / (n * k)).max(1));
    let reference: Vec<f32> = (0..rows * n)
        .map(|ij| {
            let (i, j) = (ij / n, ij % n);
            let (ra, rb) = (&av[i * k..(i + 1) * k], &bv[j * k..(j + 1) * k]);
            ra.iter()
                .zip(rb)
                .map(|(&x, &y)| x as f64 * y as f64)
                .sum::<f64>() as f32
        })
        .collect();
    let check = Validation::of(&ours.data[..rows * n], &reference, a.perturb);
    drop(ours);
    let timing = time(a.warmup, a.iters, || p.run_timed().map(|(_, k)| k))?;
    Ok(Timed {
        m: Measured::new(BenchOp::Matmul, &timing, 1.0, Some(check)),
        flops: p.flops(),
    })
}

/// A linear op on `li`, validated on its first rows against the f64 CPU reference (the loss,
/// and the three gradients with the backward), then timed on the whole.
fn linear_op(ctx: &Context, op: BenchOp, li: &LinearInputs, a: &BenchArgs) -> Result<Timed> {
    let grad = op == BenchOp::LinearCrossEntropyGrad;
    let opts = LossOptions::default();
    let (n, d, c) = (
        li.inputs.shape[0],
        li.inputs.shape[1],
        li.linear_weight.shape[0],
    );
    let head = li.head((VALIDATION_MACS / (d * c)).max(1));
    let ours = linear::run_gpu(ctx, &head, &opts, grad)?;
    let reference = linear::narrow(linear::run_cpu(&head, &Default::default(), grad, false)?);
    let mut check = Validation::of(&ours.loss.data, &reference.loss.data, a.perturb);
    let grads = [
        (ours.grad_input, reference.grad_input),
        (ours.grad_linear_weight, reference.grad_linear_weight),
    ];
    for (g, r) in grads {
        let (g, r) = (g.map(|o| o.data), r.map(|o| o.data));
        let (g, r) = (g.unwrap_or_default(), r.unwrap_or_default());
        check = check.and(match g.len() == r.len() {
            true => Validation::of(&g, &r, false),
            false => Validation {
                max_abs: f64::INFINITY,
                valid: false,
            },
        });
    }
    drop(head);
    let linear = wgpu_xent::Linear::new(li.inputs.input(), li.linear_weight.logits());
    let call = LinearCall::new(linear, li.inputs.target()).options(opts);
    let prepared = ctx.prepare(&call.grad(if grad { Grad::Returned } else { Grad::None }))?;
    let timing = time(a.warmup, a.iters, || prepared.run_timed().map(|(_, k)| k))?;
    let macs = n as f64 * d as f64 * c as f64;
    Ok(Timed {
        m: Measured::new(op, &timing, 1.0, Some(check)),
        flops: if grad { 6.0 * macs } else { 2.0 * macs },
    })
}

/// The row of `t` at `shape`; `matmul_ms`: the median of the matmul of its size.
fn row(t: &Timed, shape: String, dtype: DType, matmul_ms: Option<f64>) -> Row {
    let (median, min, max) = t.m.wall;
    let check = t.m.check.unwrap_or(Validation {
        max_abs: f64::NAN,
        valid: false,
    });
    Row {
        implementation: "xent-gpu".into(),
        op: t.m.op.name().into(),
        shape,
        dtype: format!("{dtype:?}").to_lowercase(),
        median_ms: median,
        min_ms: min,
        max_ms: max,
        kernel_median_ms: t.m.kernel,
        calls_per_sample: t.m.calls,
        flops: t.flops,
        gflop_per_s: t.flops / median / 1e6,
        ratio_to_matmul: matmul_ms.map(|mm| median / mm),
        max_abs_err: check.max_abs,
        valid: check.valid,
    }
}

/// Every op at one shape: matmul alone, or the matmul of the linear ops' size and then each
/// of them.
fn measure_shape(
    ctx: &Context,
    (p, q, r): (usize, usize, usize),
    a: &BenchArgs,
) -> Result<Vec<Row>> {
    if a.ops.contains(&BenchOp::Matmul) {
        let t = matmul(ctx, (p, q, r), a)?;
        return Ok(vec![row(&t, format!("{p}x{q}x{r}"), DType::F32, None)]);
    }
    // The logits' product of N x D x C: [N, D]·[C, D]ᵀ, i.e. M = N, N = C, K = D.
    let (n, d, c) = (p, q, r);
    let mm = matmul(ctx, (n, c, d), a)?;
    let mut rows = vec![row(&mm, format!("{n}x{c}x{d}"), DType::F32, None)];
    let synth = Synth {
        seed: 0,
        weighted: false,
        ignore_frac: 0.0,
        ignore_index: -100,
        probs: false,
    };
    let dtype = DType::from(a.dtype);
    let li = linear::synthesize((n, d, c), &synth, dtype, false);
    let mut ops = a.ops.clone();
    ops.dedup();
    for &op in &ops {
        let t = linear_op(ctx, op, &li, a)?;
        rows.push(row(&t, format!("{n}x{d}x{c}"), dtype, Some(mm.m.wall.0)));
    }
    Ok(rows)
}

/// Prints the table: one row per op and shape.
fn print(report: &Report) -> Result<()> {
    let ad = &report.adapter;
    out!(
        "xent bench on {} ({}, {})",
        ad.name,
        ad.backend,
        ad.device_type
    )?;
    out!(
        "{:<26} {:>16} {:>10} {:>10} {:>10} {:>10} {:>6} {:>9} {:>9} {:>9}",
        "op",
        "shape",
        "median ms",
        "min ms",
        "max ms",
        "kernel ms",
        "calls",
        "GFLOP/s",
        "x matmul",
        "max err"
    )?;
    let opt = |v: Option<f64>, prec: usize| v.map_or("-".to_string(), |v| format!("{v:.prec$}"));
    for r in &report.results {
        out!(
            "{:<26} {:>16} {:>10.3} {:>10.3} {:>10.3} {:>10} {:>6} {:>9.2} {:>9} {:>9.1e}",
            r.op,
            r.shape,
            r.median_ms,
            r.min_ms,
            r.max_ms,
            opt(r.kernel_median_ms, 3),
            r.calls_per_sample,
            r.gflop_per_s,
            opt(r.ratio_to_matmul, 2),
            r.max_abs_err,
        )?;
    }
    out!(
        "shapes: MxNxK for matmul (a[M,K]·b[N,K]ᵀ), NxDxC for the linear ops; x matmul: the \
         median over that of the matmul [N,D]·[C,D]ᵀ above it"
    )
}

/// Validates and times matmul or the linear ops; `Ok(false)` when one disagreed with the CPU
/// reference (the results are still printed and written).
pub fn run(a: &BenchArgs) -> Result<bool> {
    check_args(a)?;
    let form = match a.ops.contains(&BenchOp::Matmul) {
        true => "MxNxK",
        false => "NxDxC",
    };
    let shapes = shapes(a, form)?;
    let ctx = Context::with_options(ContextOptions {
        min_workgroups: a.min_workgroups,
        ..ContextOptions::from_env()?
    })?;
    let mut results = Vec::new();
    for &shape in &shapes {
        results.extend(measure_shape(&ctx, shape, a)?);
    }
    let report = Report {
        adapter: adapter_json(Some(&ctx)),
        valid: results.iter().all(|r| r.valid),
        results,
    };
    print(&report)?;
    for r in report.results.iter().filter(|r| !r.valid) {
        warn!(
            "validation failed: {} at {} differs from the CPU reference beyond tolerance (max \
             abs error {:e})",
            r.op, r.shape, r.max_abs_err
        );
    }
    if let Some(path) = &a.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| CliError::Arg(format!("JSON: {e}")))?;
        let mut staged = Staged::default();
        staged.stage(path, |w| Ok(w.write_all(text.as_bytes())?))?;
        for path in staged.commit()? {
            out!("wrote {}", path.display())?;
        }
    }
    Ok(report.valid)
}
