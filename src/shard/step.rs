//! The protocol run over several contexts, the one way every sharded one-shot call runs it:
//! every shard's partials, joined, merged on the host in shard order, then every shard's
//! gradient from the merged rows, joined.

use super::partial::merge_with;
use crate::error::Result;
use std::future::Future;
use std::task::Poll;

/// One shard of a sharded call, built on its context: its rows' statistics over its classes,
/// then its share of the result from every row's statistic merged over the shards. A loss
/// shard's statistic is a [`Partial`]; a softmax shard's its own (src/gpu/ops/softmax/shard.rs).
pub(crate) trait ShardStep {
    /// One row's statistic over a slice of the classes.
    type Stat: Copy;
    /// The shard's share of the result (its gradients, or its slice of the output).
    type Grad;
    /// Each row's statistic over the shard's classes.
    fn partials(&self) -> impl Future<Output = Result<Vec<Self::Stat>>>;
    /// The shard's share, given every row merged over all shards.
    fn grad(&self, merged: &[Self::Stat]) -> impl Future<Output = Result<Self::Grad>>;
    /// The statistic over no class.
    fn empty(&self) -> Self::Stat;
    /// A statistic and a later shard's, as one.
    fn merge(&self, stat: Self::Stat, later: Self::Stat) -> Self::Stat;
}

/// Every row merged over the shards, and each shard's share when asked for.
pub(crate) type Merged<S, G> = (Vec<S>, Option<Vec<G>>);

/// The shards' statistics, joined (each shard's run submitted before any is waited for, so
/// their devices work at once), merged in shard order, and with `grad` each shard's share
/// the same way: the merged rows, and the shares in shard order.
pub(crate) async fn run_steps<S: ShardStep>(
    steps: &[S],
    grad: bool,
) -> Result<Merged<S::Stat, S::Grad>> {
    let Some(first) = steps.first() else {
        return Ok((vec![], grad.then(Vec::new)));
    };
    let partials = join_all(steps.iter().map(|s| s.partials()).collect()).await;
    let partials: Vec<Vec<S::Stat>> = partials.into_iter().collect::<Result<_>>()?;
    let merged = merge_with(&partials, first.empty(), |a, b| first.merge(a, b))?;
    if !grad {
        return Ok((merged, None));
    }
    let grads = join_all(steps.iter().map(|s| s.grad(&merged)).collect()).await;
    let grads = grads.into_iter().collect::<Result<_>>()?;
    Ok((merged, Some(grads)))
}

/// Each shard's slice of probability targets `[N, C]` (`q`): classes `bounds[k]..bounds[k + 1]`
/// of every row, `[N, Cs_k]`.
pub(crate) fn probs_slices(q: &[f32], (n, c): (usize, usize), bounds: &[usize]) -> Vec<Vec<f32>> {
    let slice = |s: &[usize]| -> Vec<f32> {
        (0..n)
            .flat_map(|r| &q[r * c + s[0]..r * c + s[1]])
            .copied()
            .collect()
    };
    bounds.windows(2).map(slice).collect()
}

/// Every future of `futures` run to its end, polled together: their outputs in order.
pub(crate) async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, out) in futures.iter_mut().zip(outputs.iter_mut()) {
            if out.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *out = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|o| o.expect("every future is done"))
        .collect()
}
