//! cross_entropy over vocabulary shards `[N, Cs_k]` (classes in shard order) on one or more
//! contexts: each shard's partials on its own context, the shards concurrently; merged on the
//! host in shard order and reduced to the loss in f64 ([`crate::cpu::shard`]); then each
//! shard's slice of the gradient on its context.

use super::shard::{PreparedShard, VocabShard};
use super::Loss;
use crate::cpu::shard::{self, Partial, ShardTargets};
use crate::cpu::wide::WideOptions;
use crate::error::{Result, XentError};
use crate::gpu::runtime::context::Context;
use crate::options::{LossOptions, Output, Reduction, Target, Tensor};
use crate::problem::{check_loss, Targets, IGNORED};

/// The shards' loss and, with `grad`, each shard's gradient; shard k runs on
/// `devices[k % devices.len()]`.
pub(crate) fn run_sharded(
    devices: &[Context],
    shards: &[Tensor<f32>],
    target: Target,
    opts: &LossOptions,
    grad: bool,
) -> Result<(Output, Option<Vec<Output>>)> {
    let (n, sizes) = shard_sizes(shards)?;
    if devices.is_empty() {
        return Err(XentError::InvalidArgument(
            "sharded cross_entropy needs at least one context".into(),
        ));
    }
    let c: usize = sizes.iter().sum();
    let shape = [n, c];
    let problem = check_loss(Loss::CrossEntropy, &shape, n * c, &target, opts)?;
    let mut probs: Vec<Vec<f32>> = vec![vec![]; shards.len()];
    let mut firsts = vec![];
    let mut c0 = 0;
    for (k, &cs) in sizes.iter().enumerate() {
        if let Targets::Probs(p) = &problem.targets {
            probs[k] = (0..n)
                .flat_map(|r| &p[r * c + c0..r * c + c0 + cs])
                .copied()
                .collect();
        }
        firsts.push(c0);
        c0 += cs;
    }
    let shard_shapes: Vec<[usize; 2]> = sizes.iter().map(|&cs| [n, cs]).collect();
    let prepare = |k: usize| -> Result<(PreparedShard, Vec<Partial>)> {
        let target = match &problem.targets {
            Targets::Probs(_) => Target::Probs(Tensor::new(&probs[k], &shard_shapes[k])),
            Targets::Classes(_) => target,
        };
        let vocab = VocabShard {
            logits: shards[k],
            first_class: firsts[k],
            classes: c,
            target,
            options: *opts,
            grad,
        };
        let prepared = devices[k % devices.len()].build_shard(vocab, target, opts, grad)?;
        let partials = prepared.partials()?;
        Ok((prepared, partials))
    };
    let done = concurrently(shards.len(), prepare)?;
    let (prepared, partials): (Vec<_>, Vec<_>) = done.into_iter().unzip();
    let merged = shard::merge(&partials)?;
    let loss = merged_loss(&merged, c, &problem, opts)?;
    if !grad {
        return Ok((loss, None));
    }
    let grads = concurrently(prepared.len(), |k| prepared[k].grad(&merged))?;
    Ok((loss, Some(grads)))
}

/// `work(0..count)`, each on its own thread, in order; the first error.
pub(crate) fn concurrently<T: Send>(
    count: usize,
    work: impl Fn(usize) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..count)
            .map(|k| {
                s.spawn({
                    let w = &work;
                    move || w(k)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                // A panic is a bug, not an input error: it goes on as the panic it was.
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// N and each shard's Cs, checked: every shard `[N, Cs]` with Cs > 0.
fn shard_sizes(shards: &[Tensor<f32>]) -> Result<(usize, Vec<usize>)> {
    let n = match shards.first().map(|s| s.shape) {
        Some(&[n, _]) => n,
        _ => {
            return Err(XentError::InvalidShape(
                "shards are [N, Cs] tensors, at least one".into(),
            ))
        }
    };
    let mut sizes = vec![];
    for s in shards {
        match s.shape {
            &[rows, cs] if rows == n && cs > 0 => sizes.push(cs),
            other => {
                return Err(XentError::InvalidShape(format!(
                    "every shard is [{n}, Cs] with Cs > 0, got {other:?}"
                )))
            }
        }
        s.check_len("shard")?;
    }
    Ok((n, sizes))
}

/// The loss of `cross_entropy` (or of a `linear_cross_entropy`) over C = `classes` from every
/// row's partial merged over the shards ([`crate::cpu::shard::merge`]), computed in f64 and
/// reduced as `opts` asks: what a sharded caller's merging rank returns. `target` is the
/// class targets `[N]`, or any probabilities (their sums came with the partials).
pub fn loss_of_merged(
    merged: &[Partial],
    classes: usize,
    target: Target,
    opts: &LossOptions,
) -> Result<Output> {
    let n = merged.len();
    let shape = [n, classes];
    let problem = match target {
        Target::Probs(_) => crate::problem::check_loss_shapes(
            Loss::CrossEntropy,
            &shape,
            n * classes,
            &shape,
            true,
            opts,
        )?,
        t => check_loss(Loss::CrossEntropy, &shape, n * classes, &t, opts)?,
    };
    merged_loss(merged, classes, &problem, opts)
}

/// The loss from every row's merged partial, in f64, as the options reduce it.
pub(crate) fn merged_loss(
    merged: &[Partial],
    classes: usize,
    problem: &crate::problem::LossProblem,
    opts: &LossOptions,
) -> Result<Output> {
    let weight: Option<Vec<f64>> = opts.weight.map(|w| w.iter().map(|&v| v as f64).collect());
    let wide = WideOptions {
        weight: weight.as_deref(),
        // The checked targets mark an ignored row with IGNORED.
        ignore_index: IGNORED as i64,
        reduction: opts.reduction,
        label_smoothing: opts.label_smoothing as f64,
        z_loss: opts.z_loss as f64,
        softcap: opts.softcap.map(|c| c as f64),
    };
    let ys: Vec<i64>;
    let targets = match &problem.targets {
        Targets::Classes(t) => {
            ys = t.iter().map(|&y| y as i64).collect();
            ShardTargets::Classes(&ys)
        }
        Targets::Probs(_) => ShardTargets::Probs(&[]),
    };
    let out = shard::loss(merged, classes, &targets, &wide)?;
    Ok(Output {
        data: out.data.iter().map(|&v| v as f32).collect(),
        shape: match opts.reduction {
            Reduction::None => problem.out_shape.clone(),
            _ => vec![],
        },
    })
}
