//! The ops: log_softmax / softmax (`softmax`), cross_entropy / nll_loss (`loss`, and
//! `device` for its device-tensor form), linear_cross_entropy and the matmul (`linear`), the
//! deterministic reduction (`reduce`), 16-bit packing and gathers (`convert`) and the
//! roofline kernels (`bandwidth`). Each plans its dispatches on the runtime and the kernels.

#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod bandwidth;
pub(crate) mod convert;
pub(crate) mod device;
pub(crate) mod linear;
pub(crate) mod loss;
pub(crate) mod reduce;
pub(crate) mod shard_host;
pub(crate) mod softmax;
