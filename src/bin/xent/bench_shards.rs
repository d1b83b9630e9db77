//! `xent bench --shards N`: cross-entropy (forward, or with `--op cross-entropy-grad` forward
//! and backward) over N class shards on the devices of `Context::for_shards`, timed end to
//! end (host to host, as the sharded call runs), beside the unsharded call on the first
//! device in the same run; and the bytes the shards exchange per row.

use crate::bench::BenchArgs;
use crate::error::{CliError, Result};
use crate::sharded::{tensors, Cut};
use crate::traffic::BenchOp;
use std::time::Instant;
use wgpu_xent::{Context, LossOptions, Target, Tensor};

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

/// The flags `--shards` times with; the others it refuses rather than ignores.
fn check_flags(a: &BenchArgs) -> Result<bool> {
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
    match a.ops[..] {
        [] | [BenchOp::CrossEntropy] => Ok(false),
        [BenchOp::CrossEntropyGrad] => Ok(true),
        _ => Err(CliError::Arg(
            "--shards times cross-entropy or cross-entropy-grad (one --op)".into(),
        )),
    }
}

/// Each `--shape` as (N, C), both at least 1.
fn shapes(a: &BenchArgs) -> Result<Vec<(usize, usize)>> {
    a.shapes
        .iter()
        .map(|s| match crate::data::parse_shape(s)?[..] {
            [n, c] if n > 0 && c > 0 => Ok((n, c)),
            _ => Err(CliError::Arg(format!(
                "--shape {s}: --shards takes NxC with N >= 1 and C >= 1"
            ))),
        })
        .collect()
}

pub fn run(a: &BenchArgs, count: usize) -> Result<bool> {
    let grad = check_flags(a)?;
    let shapes = shapes(a)?;
    let widest = shapes.iter().map(|s| s.1).max().unwrap_or(1);
    let devices = crate::sharded::devices(count, widest)?;
    let names: Vec<String> = devices
        .iter()
        .map(|d| format!("{} ({:?})", d.adapter_info().name, d.adapter_info().backend))
        .collect();
    println!("devices: {}", names.join(", "));
    println!("shape          shards  sharded ms  unsharded ms  ratio  exchanged B/row  same loss");
    let mut all_same = true;
    for &(n, c) in &shapes {
        all_same &= time_shape(a, &devices, (n, c), grad)?;
    }
    Ok(all_same)
}

/// Times one shape both ways and prints its line: whether the losses agree.
fn time_shape(
    a: &BenchArgs,
    devices: &[Context],
    (n, c): (usize, usize),
    grad: bool,
) -> Result<bool> {
    let mut rng = crate::rng::Rng::new(7);
    let x: Vec<f32> = (0..n * c).map(|_| rng.normal(2.0)).collect();
    let t: Vec<i64> = (0..n).map(|_| rng.below(c) as i64).collect();
    let cut = Cut::new((n, c, 1), devices.len());
    let k = cut.count();
    let (parts, shard_shapes) = (cut.shards(&x), cut.shapes());
    let shards = tensors(&parts, &shard_shapes);
    let (shape, rows) = ([n, c], [n]);
    let target = Target::I64(Tensor::new(&t, &rows));
    let opts = LossOptions::default();
    let mut sharded_loss = 0.0;
    let sharded = time(a, || {
        let (l, _) = Context::cross_entropy_sharded(devices, &shards, target, &opts, grad)?;
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
    let same = (sharded_loss - loss).abs() <= 1e-5 + 1e-4 * loss.abs();
    println!(
        "{:<14} {:>6}  {:>10.2}  {:>12.2}  {:>5.2}  {:>15}  {}",
        format!("{n}x{c}"),
        k,
        sharded,
        whole,
        sharded / whole,
        k * WIRE_F64S * 8,
        if same { "yes" } else { "NO" }
    );
    Ok(same)
}
