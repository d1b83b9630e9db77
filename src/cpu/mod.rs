//! The CPU reference: the same operations and semantics as the GPU path, accumulated in f64
//! and parallel over rows. Each file mirrors a shader so the two read side by side:
//! `softmax.rs` ↔ softmax.wgsl, `loss.rs` ↔ loss.wgsl
//! and reduce.wgsl, `grad.rs` ↔ grad.wgsl; `wide.rs` runs the same code on f64 inputs. It is
//! the oracle of the GPU tests and `xent eval --device cpu`. Its online log-sum-exp is
//! `crate::shard::Lse` (↔ shaders/shared/lse.wgsl), shared with the shard protocol.

mod grad;
pub mod linear;
mod loss;
pub mod shard;
mod softmax;
pub mod wide;

pub(crate) use loss::mean;
pub use loss::{
    cross_entropy, cross_entropy_backward, cross_entropy_f64, cross_entropy_with_lse, nll_loss,
    nll_loss_backward,
};
pub use softmax::{log_softmax, log_softmax_backward, softmax, softmax_backward};

/// The element types the reference reads and writes: f32, or f64 (`wide`). Arithmetic is
/// f64 either way; results are rounded to `Self` at the end.
pub(crate) trait Real: Copy + Send + Sync + Into<f64> + 'static {
    /// `v` rounded to `Self`.
    fn from_f64(v: f64) -> Self;
}

impl Real for f32 {
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

impl Real for f64 {
    fn from_f64(v: f64) -> Self {
        v
    }
}
