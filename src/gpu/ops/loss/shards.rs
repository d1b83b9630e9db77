//! cross_entropy over vocabulary shards `[N, Cs_k]` (classes in shard order) on one or more
//! contexts: each shard's partials on its own context, the shards concurrently; merged on the
//! host in shard order and reduced to the loss in f64 ([`crate::shard`]); then each
//! shard's slice of the gradient on its context.

use super::shard::VocabShard;
use super::Loss;
use crate::error::{Result, XentError};
use crate::gpu::ops::loss::shard::build_shard;
use crate::gpu::runtime::context::Context;
use crate::gpu::runtime::scope::build_each;
use crate::options::{LossOptions, Output, Target, Tensor};
use crate::problem::{check_loss, Targets};
use crate::shard::{merged_loss, probs_slices, run_steps};

/// The shards' loss and, with `grad`, each shard's gradient; shard k runs on
/// `devices[k % devices.len()]`.
pub(crate) async fn run_sharded(
    devices: &[Context],
    shards: &[Tensor<'_, f32>],
    target: Target<'_>,
    opts: &LossOptions<'_>,
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
    let bounds: Vec<usize> = std::iter::once(0)
        .chain(sizes.iter().scan(0, |c0, &cs| {
            *c0 += cs;
            Some(*c0)
        }))
        .collect();
    let probs = match &problem.targets {
        Targets::Probs(q) => probs_slices(q, (n, c), &bounds),
        Targets::Classes(_) => vec![],
    };
    let shard_shapes: Vec<[usize; 2]> = sizes.iter().map(|&cs| [n, cs]).collect();
    let prepare = |k: usize| {
        let target = match &problem.targets {
            Targets::Probs(_) => Target::Probs(Tensor::new(&probs[k], &shard_shapes[k])),
            Targets::Classes(_) => target,
        };
        VocabShard {
            logits: shards[k],
            first_class: bounds[k],
            classes: c,
            target,
            options: *opts,
            grad: if grad {
                crate::gpu::api::Grad::Returned
            } else {
                crate::gpu::api::Grad::None
            },
        }
    };
    let steps = build_each(devices, shards.len(), |k, ctx| {
        let vocab = prepare(k);
        build_shard(ctx, vocab, vocab.target, opts, grad)
    })
    .await?;
    let (merged, grads) = run_steps(&steps, grad).await?;
    Ok((merged_loss(&merged, c, &problem, opts)?, grads))
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
