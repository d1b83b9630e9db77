//! The protocol run over several contexts, the one way every sharded one-shot call runs it:
//! every shard's partials, joined, merged on the host in shard order, then every shard's
//! gradient from the merged rows, joined.

use super::partial::{merge, Partial};
use crate::error::Result;
use std::future::Future;
use std::task::Poll;

/// One shard of a sharded call, built on its context: its rows' partials, then its slice of
/// the gradient from every row's partial merged over the shards.
pub(crate) trait ShardStep {
    /// The shard's share of the gradients.
    type Grad;
    /// Each row's partial over the shard's classes.
    fn partials(&self) -> impl Future<Output = Result<Vec<Partial>>>;
    /// The shard's gradients, given every row merged over all shards.
    fn grad(&self, merged: &[Partial]) -> impl Future<Output = Result<Self::Grad>>;
}

/// Every row merged over the shards, and each shard's gradient when asked for.
pub(crate) type Merged<G> = (Vec<Partial>, Option<Vec<G>>);

/// The shards' partials, joined (each shard's run submitted before any is waited for, so
/// their devices work at once), merged in shard order, and with `grad` each shard's gradient
/// the same way: the merged rows, and the gradients in shard order.
pub(crate) async fn run_steps<S: ShardStep>(steps: &[S], grad: bool) -> Result<Merged<S::Grad>> {
    let partials = join_all(steps.iter().map(|s| s.partials()).collect()).await;
    let partials: Vec<Vec<Partial>> = partials.into_iter().collect::<Result<_>>()?;
    let merged = merge(&partials)?;
    if !grad {
        return Ok((merged, None));
    }
    let grads = join_all(steps.iter().map(|s| s.grad(&merged)).collect()).await;
    let grads = grads.into_iter().collect::<Result<_>>()?;
    Ok((merged, Some(grads)))
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
