//! The vocabulary-shard protocol of `cross_entropy`: what every sharded path (host, device,
//! linear, across contexts or MPI ranks) exchanges and how it is merged.
//!
//! A shard holds the logits `[N, Cs]` of classes `[c0, c0 + Cs)` of `[N, C]`. It gives one
//! [`Partial`] per row, a few numbers that any all-gather can move. The partials of a row,
//! merged in shard order by [`merge`], are the row's softmax statistics over all C classes.
//! From them alone come the loss ([`loss`], [`loss_of_merged`]) and, on each shard, its own
//! slice of `d loss / d logits`. No shard ever needs another shard's logits. The f64 oracle of
//! a shard's partials and gradient is `crate::cpu::shard`; the GPU shards are in
//! src/gpu/ops/loss/ and src/gpu/ops/linear/; `step.rs` runs the protocol over contexts.
//!
//! The math, with z the logit after softcap, q_c = w_c for class targets (the smoothing term)
//! and w_c · p'_c for probabilities (p' = (1 - ε) p + ε / C):
//! - lse = max + ln(Σ exp(z_c - max));
//! - class target y: w_y (lse - z_y), smoothed to (1 - ε) of that plus (ε / C)(Q lse - Σ q_c z_c)
//!   with Q = Σ q_c; D gets w_y; an ignored row gives 0 and adds 0 to D;
//! - probabilities: Q lse - Σ q_c z_c, D gets 1;
//! - z-loss: + z lse² on every counted row.

mod loss;
mod lse;
mod partial;
mod step;

pub use loss::{loss, loss_of_merged, ShardTargets};
pub(crate) use loss::{merged_loss, row_losses};
pub use lse::Lse;
pub use partial::{even_bounds, merge, Partial};
pub(crate) use step::{probs_slices, run_steps, ShardStep};
