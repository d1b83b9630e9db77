//! The protocol run over several contexts, the one way every sharded one-shot call runs it:
//! each shard's partials on its own thread, merged on the host in shard order, then each
//! shard's gradient from the merged rows.

use super::partial::{merge, Partial};
use crate::error::Result;

/// One shard of a sharded call, built on its context: its rows' partials, then its slice of
/// the gradient from every row's partial merged over the shards.
pub(crate) trait ShardStep {
    /// The shard's share of the gradients.
    type Grad: Send;
    /// Each row's partial over the shard's classes.
    fn partials(&self) -> Result<Vec<Partial>>;
    /// The shard's gradients, given every row merged over all shards.
    fn grad(&self, merged: &[Partial]) -> Result<Self::Grad>;
}

/// Every row merged over the shards, and each shard's gradient when asked for.
pub(crate) type Merged<G> = (Vec<Partial>, Option<Vec<G>>);

/// Builds `count` shards (`prepare(k)`, each on its own thread), merges their partials in
/// shard order, and with `grad` computes each shard's gradient: the merged rows, and the
/// gradients in shard order.
pub(crate) fn run_steps<S: ShardStep + Send + Sync>(
    count: usize,
    prepare: impl Fn(usize) -> Result<S> + Sync,
    grad: bool,
) -> Result<Merged<S::Grad>> {
    let built = concurrently(count, |k| {
        let step = prepare(k)?;
        let partials = step.partials()?;
        Ok((step, partials))
    })?;
    let (steps, partials): (Vec<S>, Vec<Vec<Partial>>) = built.into_iter().unzip();
    let merged = merge(&partials)?;
    if !grad {
        return Ok((merged, None));
    }
    let grads = concurrently(steps.len(), |k| steps[k].grad(&merged))?;
    Ok((merged, Some(grads)))
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
