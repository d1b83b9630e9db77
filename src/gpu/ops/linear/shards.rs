//! `linear_cross_entropy` with the classifier's classes split over several contexts: each
//! shard on its own thread, the partials merged on the host in shard order, the input's
//! gradient summed over the shards in that order.

use super::shard::{LinearShard, LinearShardGrads};
use crate::error::{Result, XentError};
use crate::gpu::api::Grad;
use crate::gpu::ops::linear::shard::build_linear_shard;
use crate::gpu::ops::loss::Loss;
use crate::gpu::runtime::context::Context;
use crate::gpu::runtime::scope::build_each;
use crate::linear::{Linear, LinearOutput};
use crate::options::{LossOptions, Output, Reduction, Target, Tensor};
use crate::problem::{check_loss, Targets, IGNORED};
use crate::shard::{even_bounds, merged_loss, probs_slices, run_steps};

/// `linear_cross_entropy` with the classifier's classes split over `devices` (shard k of
/// `min(devices, C)` even slices on `devices[k % len]`, the shards on their own threads),
/// the partials merged on the host in shard order, dX summed over the shards in that order.
pub(crate) async fn run_linear_sharded(
    devices: &[Context],
    linear: Linear<'_>,
    target: Target<'_>,
    opts: &LossOptions<'_>,
    grad: bool,
) -> Result<LinearOutput> {
    let p = linear.problem()?;
    let (n, d, c) = (p.rows, p.features, p.classes);
    let logits_shape = match p.unbatched {
        true => vec![c],
        false => vec![n, c],
    };
    let problem = check_loss(Loss::CrossEntropy, &logits_shape, n * c, &target, opts)?;
    if devices.is_empty() {
        return Err(XentError::InvalidArgument(
            "a sharded linear_cross_entropy needs at least one context".into(),
        ));
    }
    let (x, w) = (linear.input.to_f32(), linear.linear_weight.to_f32());
    let b = linear.linear_bias.map(|b| b.to_f32());
    let bounds = even_bounds(c, devices.len());
    let count = bounds.len() - 1;
    let (classes, probs) = shard_targets(&problem, &bounds, (n, c), opts);
    let (xs, rows) = ([n, d], [n]);
    let shapes: Vec<([usize; 2], [usize; 2], [usize; 1])> = bounds
        .windows(2)
        .map(|s| ([s[1] - s[0], d], [n, s[1] - s[0]], [s[1] - s[0]]))
        .collect();
    let prepare = |k: usize| {
        let (c0, c1) = (bounds[k], bounds[k + 1]);
        let (ws, ps, bs) = &shapes[k];
        let target = match &problem.targets {
            Targets::Probs(_) => Target::Probs(Tensor::new(&probs[k], ps)),
            Targets::Classes(_) => Target::I64(Tensor::new(&classes, &rows)),
        };
        LinearShard {
            input: Tensor::new(&x, &xs),
            linear_weight: Tensor::new(&w[c0 * d..c1 * d], ws),
            linear_bias: b.as_ref().map(|b| Tensor::new(&b[c0..c1], bs)),
            first_class: c0,
            classes: c,
            target,
            options: *opts,
            grad: if grad { Grad::Returned } else { Grad::None },
            budget: linear.budget,
        }
    };
    let steps = build_each(devices, count, |k, ctx| {
        let shard = prepare(k);
        build_linear_shard(ctx, shard, shard.target, opts, grad)
    })
    .await?;
    let (merged, grads) = run_steps(&steps, grad).await?;
    let mut loss = merged_loss(&merged, c, &problem, opts)?;
    if opts.reduction == Reduction::None {
        loss.shape = problem.out_shape.clone();
    }
    let mut out = LinearOutput {
        loss,
        grad_input: None,
        grad_linear_weight: None,
        grad_linear_bias: None,
        // Each row's lse over all C, from its merged partial: (max, sum_exp, q, lse).
        lse: linear.lse.then(|| Output {
            data: merged.iter().map(|p| p.stats()[3]).collect(),
            shape: p.rows_shape(),
        }),
    };
    if let Some(grads) = grads {
        let (dx, dw, db) = join_grads(&grads, linear.input.shape(), (n, d, c), b.is_some());
        (out.grad_input, out.grad_linear_weight, out.grad_linear_bias) = (Some(dx), Some(dw), db);
    }
    Ok(out)
}

/// The class targets `[N]` as every shard takes them (ignored rows as `ignore_index`), and
/// each shard's slice of probability targets.
fn shard_targets(
    problem: &crate::problem::LossProblem,
    bounds: &[usize],
    (n, c): (usize, usize),
    opts: &LossOptions<'_>,
) -> (Vec<i64>, Vec<Vec<f32>>) {
    match &problem.targets {
        Targets::Classes(t) => {
            let back = |y: i32| {
                if y == IGNORED {
                    opts.ignore_index
                } else {
                    y as i64
                }
            };
            (
                t.iter().map(|&y| back(y)).collect(),
                vec![vec![]; bounds.len() - 1],
            )
        }
        Targets::Probs(q) => (vec![], probs_slices(q, (n, c), bounds)),
    }
}

/// dX summed over the shards in order, and dW and db joined from their slices.
fn join_grads(
    grads: &[LinearShardGrads],
    input_shape: &[usize],
    (n, d, c): (usize, usize, usize),
    bias: bool,
) -> (Output, Output, Option<Output>) {
    let mut dx = vec![0f32; n * d];
    for g in grads {
        dx.iter_mut()
            .zip(&g.grad_input.data)
            .for_each(|(a, v)| *a += v);
    }
    let dw = grads
        .iter()
        .flat_map(|g| g.grad_linear_weight.data.iter().copied());
    let db = grads.iter().flat_map(|g| {
        g.grad_linear_bias
            .iter()
            .flat_map(|b| b.data.iter().copied())
    });
    (
        Output {
            data: dx,
            shape: input_shape.to_vec(),
        },
        Output {
            data: dw.collect(),
            shape: vec![c, d],
        },
        bias.then(|| Output {
            data: db.collect(),
            shape: vec![c],
        }),
    )
}
