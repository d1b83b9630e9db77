//! The GPU path: one [`Context`] owns the device and the pipelines; ops are its methods.

mod chunks;
mod context;
pub mod kernels;
mod loss;
mod readback;
mod reduce;
mod softmax;

pub use context::{Context, ContextOptions};
