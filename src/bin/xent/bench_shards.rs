//! `xent bench --shards N`: cross-entropy (forward, or with `--op cross-entropy-grad` forward
//! and backward), or linear-cross-entropy (`--op linear-cross-entropy[-grad]`, the fused
//! linear shards), over N class shards on the devices of `Context::for_shards`, timed end to
//! end (host to host, as the sharded call runs), beside the unsharded call on the first
//! device in the same run; and the bytes the shards exchange per row.

use crate::bench::BenchArgs;
use crate::error::{CliError, Result};
use crate::sharded::{tensors, Cut};
use crate::traffic::BenchOp;
use std::time::Instant;
use wgpu_xent::{Context, Linear, LossOptions, Target, Tensor};
use wgpu_xent::{CrossEntropyShards, Grad, LinearShards};

/// f64s a row's partial takes on the wire (max, sum-exp, Q, Σ q(z - max), z_target, found).
const WIRE_F64S: usize = 6;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Milliseconds of `f` over `a.warmup` untimed and `a.iters` timed runs: the median.
fn time(a: &BenchArgs, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    for _ in 0..a.warmup {
        f()?;
    }
    let mut ms = vec![];
    for _ in 0..a.iters {
        let t = Instant::now();
        f()?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(median(ms))
}

/// What `--shards` times: cross-entropy or linear-cross-entropy, with or without the
/// backward.
#[derive(Clone, Copy)]
struct Mode {
    linear: bool,
    grad: bool,
}

/// The flags `--shards` times with; the others it refuses rather than ignores.
fn check_flags(a: &BenchArgs) -> Result<Mode> {
    let unused = [
        ("--json", a.json.is_some()),
        ("--plot", a.plot.is_some()),
        ("--large", a.large),
        ("--min-workgroups", a.min_workgroups.is_some()),
        ("--device cpu", a.device == crate::DeviceKind::Cpu),
        (
            "--dtype other than f32",
            a.dtype != crate::eval::InputDtype::F32,
        ),
    ];
    if let Some((flag, _)) = unused.iter().find(|f| f.1) {
        return Err(CliError::Arg(format!("{flag} is not used with --shards")));
    }
    if a.shapes.is_empty() {
        return Err(CliError::Arg("--shards needs --shape NxC".into()));
    }
    let (linear, grad) = match a.ops[..] {
        [] | [BenchOp::CrossEntropy] => (false, false),
        [BenchOp::CrossEntropyGrad] => (false, true),
        [BenchOp::LinearCrossEntropy] => (true, false),
        [BenchOp::LinearCrossEntropyGrad] => (true, true),
        _ => return Err(CliError::Arg(
            "--shards times cross-entropy, linear-cross-entropy or their -grad forms (one --op)"
                .into(),
        )),
    };
    Ok(Mode { linear, grad })
}

/// Each `--shape` as (N, D, C): NxC (D = 0) for cross-entropy, NxDxC for
/// linear-cross-entropy, each at least 1, and refused before anything is allocated where
/// it does not fit in memory (as the unsharded bench's shapes).
fn shapes(a: &BenchArgs, mode: Mode) -> Result<Vec<(usize, usize, usize)>> {
    a.shapes
        .iter()
        .map(|s| {
            let (n, d, c) = match (mode.linear, &crate::data::parse_shape(s)?[..]) {
                (false, &[n, c]) if n > 0 && c > 0 => (n, 0, c),
                (true, &[n, d, c]) if n > 0 && d > 0 && c > 0 => (n, d, c),
                _ => {
                    return Err(CliError::Arg(format!(
                    "--shape {s}: --shards takes NxC (NxDxC for linear-cross-entropy), each at least 1"
                )))
                }
            };
            // Every array of both runs, as f32: the logits (or operands and gradients), the
            // shards' copies and their gradients, several times over.
            crate::data::check_fits_arrays(s, &[(n, d), (c, d), (n, c)], 4 * 6)?;
            Ok((n, d, c))
        })
        .collect()
}

pub fn run(a: &BenchArgs, count: usize) -> Result<bool> {
    let mode = check_flags(a)?;
    let shapes = shapes(a, mode)?;
    let widest = shapes.iter().map(|s| s.2).max().unwrap_or(1);
    let devices = crate::sharded::devices(count, widest)?;
    let names: Vec<String> = devices
        .iter()
        .map(|d| format!("{} ({:?})", d.adapter_info().name, d.adapter_info().backend))
        .collect();
    println!("devices: {}", names.join(", "));
    println!("shape          shards  sharded ms  unsharded ms  ratio  exchanged B/row  same loss");
    let mut all_same = true;
    for &(n, d, c) in &shapes {
        let (sharded, whole, same) = match mode.linear {
            true => time_linear(a, &devices, (n, d, c), mode.grad)?,
            false => time_shape(a, &devices, (n, c), mode.grad)?,
        };
        let k = wgpu_xent::shard::even_bounds(c, devices.len()).len() - 1;
        // Partials, and with the linear backward each shard's dX share (D f32s a row).
        let exchanged = k * WIRE_F64S * 8 + (mode.linear && mode.grad) as usize * k * d * 4;
        let name = match mode.linear {
            true => format!("{n}x{d}x{c}"),
            false => format!("{n}x{c}"),
        };
        println!(
            "{name:<14} {k:>6}  {sharded:>10.2}  {whole:>12.2}  {:>5.2}  {exchanged:>15}  {}",
            sharded / whole,
            if same { "yes" } else { "NO" }
        );
        all_same &= same;
    }
    Ok(all_same)
}

/// Times one cross-entropy shape both ways: sharded and unsharded ms, and whether the losses
/// agree.
fn time_shape(
    a: &BenchArgs,
    devices: &[Context],
    (n, c): (usize, usize),
    grad: bool,
) -> Result<(f64, f64, bool)> {
    let mut rng = crate::rng::Rng::new(7);
    let x: Vec<f32> = (0..n * c).map(|_| rng.normal(2.0)).collect();
    let t: Vec<i64> = (0..n).map(|_| rng.below(c) as i64).collect();
    let cut = Cut::new((n, c, 1), devices.len());
    let (parts, shard_shapes) = (cut.shards(&x), cut.shapes());
    let shards = tensors(&parts, &shard_shapes);
    let (shape, rows) = ([n, c], [n]);
    let target = Target::I64(Tensor::new(&t, &rows));
    let opts = LossOptions::default();
    let mut sharded_loss = 0.0;
    let sharded = time(a, || {
        let (l, _) = Context::run_sharded(
            devices,
            &CrossEntropyShards {
                shards: &shards,
                target,
                options: opts,
                grad: if grad { Grad::Returned } else { Grad::None },
            },
        )?;
        sharded_loss = l.data[0];
        Ok(())
    })?;
    let ctx = &devices[0];
    let mut loss = 0.0;
    let whole = time(a, || {
        let x = Tensor::new(&x, &shape);
        loss = match grad {
            true => {
                ctx.cross_entropy_backward(x, target, &opts, &Default::default())?
                    .loss
                    .data[0]
            }
            false => ctx.cross_entropy(x, target, &opts)?.data[0],
        };
        Ok(())
    })?;
    Ok((sharded, whole, agree(sharded_loss, loss)))
}

/// Whether a sharded loss agrees with the unsharded one.
fn agree(sharded: f32, whole: f32) -> bool {
    (sharded - whole).abs() <= 1e-5 + 1e-4 * whole.abs()
}

/// Times one linear-cross-entropy shape both ways, as [`time_shape`].
fn time_linear(
    a: &BenchArgs,
    devices: &[Context],
    (n, d, c): (usize, usize, usize),
    grad: bool,
) -> Result<(f64, f64, bool)> {
    let mut rng = crate::rng::Rng::new(7);
    let x: Vec<f32> = (0..n * d).map(|_| rng.normal(1.0)).collect();
    let w: Vec<f32> = (0..c * d).map(|_| rng.normal(0.1)).collect();
    let t: Vec<i64> = (0..n).map(|_| rng.below(c) as i64).collect();
    let (xs, ws, rows) = ([n, d], [c, d], [n]);
    let linear = Linear::new(Tensor::new(&x, &xs), Tensor::new(&w, &ws));
    let target = Target::I64(Tensor::new(&t, &rows));
    let opts = LossOptions::default();
    let mut sharded_loss = 0.0;
    let sharded = time(a, || {
        let out = Context::run_sharded(
            devices,
            &LinearShards {
                linear,
                target,
                options: opts,
                grad: if grad { Grad::Returned } else { Grad::None },
            },
        )?;
        sharded_loss = out.loss.data[0];
        Ok(())
    })?;
    let ctx = &devices[0];
    let mut loss = 0.0;
    let whole = time(a, || {
        loss = match grad {
            true => {
                ctx.linear_cross_entropy_backward(linear, target, &opts)?
                    .loss
            }
            false => ctx.linear_cross_entropy(linear, target, &opts)?,
        }
        .data[0];
        Ok(())
    })?;
    Ok((sharded, whole, agree(sharded_loss, loss)))
}
