//! # wgpu-xent
//!
//! Softmax-family classification losses — `log_softmax`, `softmax`, `nll_loss` and
//! `cross_entropy` — computed by WGSL compute shaders on any wgpu adapter (Vulkan, Metal,
//! DX12, GL, and software adapters such as lavapipe and llvmpipe), with PyTorch's
//! semantics, and a CPU reference in f64 to check them against.
//!
//! ```no_run
//! use wgpu_xent::{Context, LossOptions, Target, Tensor};
//! # fn main() -> Result<(), wgpu_xent::XentError> {
//! let ctx = Context::new()?; // the adapter named by WGPU_BACKEND / WGPU_ADAPTER_NAME
//! let logits = [2.0f32, 0.5, -1.0, 0.1, 0.2, 3.0];
//! let target = [0i64, 2];
//! let loss = ctx.cross_entropy(
//!     Tensor::new(&logits, &[2, 3]),
//!     Target::I64(Tensor::new(&target, &[2])),
//!     &LossOptions::default(),
//! )?;
//! println!("mean loss {}", loss.scalar());
//! # Ok(()) }
//! ```

pub mod cpu;
mod error;
mod geometry;
mod gpu;
mod layout;
mod options;
mod problem;

pub use error::{Result, XentError};
pub use gpu::{
    Context, ContextOptions, DeviceLoss, DeviceTensor, PreparedBandwidth, PreparedLoss,
    PreparedSoftmax, Tuning,
};
pub use options::{
    BackwardOptions, DType, Logits, LossAndGrad, LossOptions, Output, Reduction, Target, Tensor,
    DEFAULT_IGNORE_INDEX,
};

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
