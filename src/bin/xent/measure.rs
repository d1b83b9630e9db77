//! What `xent bench` measures: the copy / read / write roofline, and each op, validated
//! against the CPU reference (exactly as `xent check` compares) before it is timed.

use crate::bench::BenchArgs;
use crate::check::{TOL_ABS, TOL_REL};
use crate::compare::compare;
use crate::data::Inputs;
use crate::error::Result;
use crate::traffic::BenchOp;
use std::time::{Duration, Instant};
use wgpu_xent::{
    cpu, BackwardOptions, Context, Grad, LossCall, LossOptions, SoftmaxCall, XentError,
};

/// Above this many logits, validation runs on a sample of rows instead of the whole tensor.
const FULL_VALIDATION_MAX: usize = 1 << 27;
/// Rows in that sample.
const SAMPLE_ROWS: usize = 64;

/// Median, min and max in milliseconds.
pub fn stats(times: &[Duration]) -> (f64, f64, f64) {
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

/// Timings of one configuration: per-call wall times (each the mean of one sample of
/// `calls` back-to-back calls) and, where measured, kernel times.
pub struct Timing {
    pub wall: Vec<Duration>,
    pub kernel: Vec<Duration>,
    pub calls: usize,
}

/// A timed sample lasts at least this long: calls shorter than it are repeated back to back
/// within one sample, so that tiny shapes are timed over many calls, not one.
pub const MIN_SAMPLE: Duration = Duration::from_millis(2);
/// At most this many calls make one sample.
const MAX_CALLS: usize = 1000;

/// Runs `f` `warmup` times (at least once), then `iters` samples of `calls` calls each,
/// `calls` chosen from the last warmup call so that a sample lasts [`MIN_SAMPLE`].
pub fn time(
    warmup: usize,
    iters: usize,
    mut f: impl FnMut() -> wgpu_xent::Result<Option<Duration>>,
) -> wgpu_xent::Result<Timing> {
    let mut one = Duration::ZERO;
    for _ in 0..warmup.max(1) {
        let start = Instant::now();
        f()?;
        one = start.elapsed();
    }
    let calls = match one.as_nanos() {
        0 => MAX_CALLS,
        ns => (MIN_SAMPLE.as_nanos().div_ceil(ns) as usize).clamp(1, MAX_CALLS),
    };
    let mut t = Timing {
        wall: vec![],
        kernel: vec![],
        calls,
    };
    for _ in 0..iters {
        let start = Instant::now();
        for _ in 0..calls {
            t.kernel.extend(f()?);
        }
        t.wall.push(start.elapsed() / calls as u32);
    }
    Ok(t)
}

/// An empty submission's round trip: an empty command buffer submitted, and waited for
/// (`on_submitted_work_done`, then a blocking poll). The adapter's floor.
fn noop(ctx: &Context) -> wgpu_xent::Result<Option<Duration>> {
    let (device, queue) = (ctx.device(), ctx.queue());
    let encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
        label: Some("xent noop"),
    });
    let submission = queue.submit(Some(encoder.finish()));
    let (tx, rx) = std::sync::mpsc::channel();
    queue.on_submitted_work_done(move || {
        let _ = tx.send(());
    });
    device
        .poll(wgpu::PollType::Wait {
            submission_index: Some(submission),
            timeout: None,
        })
        .map_err(|e| XentError::Gpu(e.to_string()))?;
    rx.recv()
        .map_err(|_| XentError::Gpu("the empty submission never completed".into()))?;
    Ok(None)
}

/// The adapter's floor, an empty submission round trip, timed as the ops are.
pub fn floor(ctx: &Context, a: &BenchArgs) -> Result<Measured> {
    let timing = time(a.warmup, a.iters, || noop(ctx))?;
    Ok(Measured::new(BenchOp::Noop, &timing, 1.0, None))
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
        wide: Default::default(),
    }
}
/// One measured configuration: wall-time median, min and max (ms) per call, the kernel
/// median (ms) and the validation against the CPU reference.
#[derive(Clone)]
pub struct Measured {
    pub op: BenchOp,
    pub wall: (f64, f64, f64),
    /// Calls per timed sample (1 unless a call is shorter than [`MIN_SAMPLE`]).
    pub calls: usize,
    pub kernel: Option<f64>,
    /// The validation against the CPU reference (GPU ops only).
    pub check: Option<Validation>,
    /// The call kept its rows in workgroup memory (a `*Held` kernel): one read, not two.
    pub held: bool,
}

impl Measured {
    pub fn new(op: BenchOp, t: &Timing, scale: f64, check: Option<Validation>) -> Self {
        let (m, lo, hi) = stats(&t.wall);
        let kernel = (!t.kernel.is_empty()).then(|| stats(&t.kernel).0 * scale);
        Self {
            op,
            wall: (m * scale, lo * scale, hi * scale),
            calls: t.calls,
            kernel,
            check,
            held: false,
        }
    }
}

/// The adapter's copy, read and write bandwidth at one size.
pub struct Roofline {
    pub copy: Measured,
    pub read: Measured,
    pub write: Measured,
}

pub fn roofline(
    ctx: Option<&Context>,
    inp: &Inputs,
    elem: usize,
    a: &BenchArgs,
) -> Result<Roofline> {
    let (copy, read, write, scale) = match ctx {
        Some(ctx) => {
            let bytes = (inp.x.len() * elem) as u64;
            let bw = ctx.prepare(&wgpu_xent::BandwidthCall { bytes })?;
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

/// One op's result against the CPU reference, compared as `xent check` compares.
#[derive(Clone, Copy, Debug)]
pub struct Validation {
    /// max |gpu - cpu| (infinite where a NaN is on one side only).
    pub max_abs: f64,
    /// No element beyond `xent check`'s default tolerance.
    pub valid: bool,
}

impl Validation {
    /// Compares `ours` with `reference`; `perturb` (testing only) adds 1e-2 to `ours[0]`.
    pub fn of(ours: &[f32], reference: &[f32], perturb: bool) -> Self {
        let mut ours = std::borrow::Cow::Borrowed(ours);
        if perturb {
            if let Some(v) = ours.to_mut().first_mut() {
                *v += 1e-2;
            }
        }
        let c = compare(&ours, reference, TOL_ABS, TOL_REL);
        Self {
            max_abs: if c.max_ulp == u64::MAX {
                f64::INFINITY
            } else {
                c.max_abs
            },
            valid: c.beyond == 0,
        }
    }

    pub fn and(self, other: Self) -> Self {
        Self {
            max_abs: self.max_abs.max(other.max_abs),
            valid: self.valid && other.valid,
        }
    }
}

/// The rows validation runs on: all of them, or a sample of a huge shape.
fn validation_rows(inp: &Inputs) -> Option<Inputs> {
    (inp.x.len() > FULL_VALIDATION_MAX).then(|| sample(inp, SAMPLE_ROWS))
}

/// Validates one op against the CPU reference (on the GPU), then times it.
pub fn bench_op(
    ctx: Option<&Context>,
    op: BenchOp,
    inp: &Inputs,
    a: &BenchArgs,
) -> Result<Measured> {
    match (ctx, op) {
        (None, _) => cpu_op(op, inp, a),
        (Some(ctx), BenchOp::LogSoftmax | BenchOp::Softmax) => softmax_op(ctx, op, inp, a),
        (Some(ctx), _) => loss_op(ctx, op, inp, a),
    }
}

/// The CPU reference, timed the same way (not validated: it is the reference).
fn cpu_op(op: BenchOp, inp: &Inputs, a: &BenchArgs) -> Result<Measured> {
    let (opts, b) = (LossOptions::default(), BackwardOptions::default());
    let (x, t) = (inp.input(), inp.target());
    let timing = time(a.warmup, a.iters, || {
        match op {
            BenchOp::CrossEntropy => drop(cpu::cross_entropy(x, t, &opts)?),
            BenchOp::CrossEntropyGrad | BenchOp::CrossEntropyGradInPlace => {
                drop(cpu::cross_entropy_backward(x, t, &opts, &b)?)
            }
            BenchOp::NllLoss => drop(cpu::nll_loss(x, t, &opts)?),
            BenchOp::LogSoftmax => drop(cpu::log_softmax(x, 1)?),
            BenchOp::Softmax => drop(cpu::softmax(x, 1)?),
            // The roofline and the floor are measured apart; the products by bench_linear.
            BenchOp::Copy
            | BenchOp::Read
            | BenchOp::Write
            | BenchOp::Noop
            | BenchOp::Matmul
            | BenchOp::LinearCrossEntropy
            | BenchOp::LinearCrossEntropyGrad => {}
        }
        Ok(None)
    })?;
    Ok(Measured::new(op, &timing, 1.0, None))
}

/// cross-entropy (with or without the fused gradient) and nll-loss on the GPU.
fn loss_op(ctx: &Context, op: BenchOp, inp: &Inputs, a: &BenchArgs) -> Result<Measured> {
    let (opts, b) = (LossOptions::default(), BackwardOptions::default());
    let grad = matches!(
        op,
        BenchOp::CrossEntropyGrad | BenchOp::CrossEntropyGradInPlace
    );
    let prepare = |i: &Inputs| match (op, i.input()) {
        (BenchOp::NllLoss, x) => ctx.prepare(&LossCall::nll_loss(x, i.target())),
        (BenchOp::CrossEntropyGradInPlace, x @ wgpu_xent::FloatTensor::F32(_)) => {
            ctx.prepare(&LossCall::cross_entropy(x, i.target()).grad(Grad::InPlace))
        }
        (BenchOp::CrossEntropyGradInPlace, _) => Err(XentError::Unsupported(
            "cross-entropy-grad-in-place needs f32 logits".into(),
        )),
        (_, x) => {
            let g = if grad { Grad::Returned } else { Grad::None };
            ctx.prepare(&LossCall::cross_entropy(x, i.target()).grad(g))
        }
    };
    let prepared = prepare(inp)?;
    // Validate (on the sample for huge shapes), then time the full shape.
    let sampled = validation_rows(inp);
    let val = sampled.as_ref().unwrap_or(inp);
    let checked = sampled.as_ref().map(prepare).transpose()?;
    let p = checked.as_ref().unwrap_or(&prepared);
    let (ours, _) = p.run_timed()?;
    let (vx, vt) = (val.input(), val.target());
    let reference = match op {
        BenchOp::NllLoss => cpu::nll_loss(vx, vt, &opts)?,
        _ => cpu::cross_entropy(vx, vt, &opts)?,
    };
    let mut check = Validation::of(&ours.loss.data, &reference.data, a.perturb);
    if grad {
        let reference = cpu::cross_entropy_backward(vx, vt, &opts, &b)?;
        let g = reference.grad.map(|g| g.data).unwrap_or_default();
        check = check.and(Validation::of(&p.read_grad()?, &g, false));
    }
    drop(checked);
    let timing = time(a.warmup, a.iters, || prepared.run_timed().map(|(_, k)| k))?;
    Ok(Measured {
        held: prepared.holds_rows(),
        ..Measured::new(op, &timing, 1.0, Some(check))
    })
}

/// log-softmax and softmax on the GPU.
fn softmax_op(ctx: &Context, op: BenchOp, inp: &Inputs, a: &BenchArgs) -> Result<Measured> {
    let log = op == BenchOp::LogSoftmax;
    let call = |x| match log {
        true => SoftmaxCall::log_softmax(x, 1),
        false => SoftmaxCall::softmax(x, 1),
    };
    let prepared = ctx.prepare(&call(inp.input()))?;
    let sampled = validation_rows(inp);
    let val = sampled.as_ref().unwrap_or(inp);
    let checked = match &sampled {
        Some(s) => Some(ctx.prepare(&call(s.input()))?),
        None => None,
    };
    let (ours, _) = checked.as_ref().unwrap_or(&prepared).run_timed()?;
    drop(checked);
    let reference = if log {
        cpu::log_softmax(val.input(), 1)?
    } else {
        cpu::softmax(val.input(), 1)?
    };
    let check = Validation::of(&ours.data, &reference.data, a.perturb);
    let timing = time(a.warmup, a.iters, || prepared.run_timed().map(|(_, k)| k))?;
    Ok(Measured {
        held: prepared.holds_rows(),
        ..Measured::new(op, &timing, 1.0, Some(check))
    })
}
