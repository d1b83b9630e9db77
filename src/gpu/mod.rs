//! The GPU path, in three layers: `runtime/` (the device, buffers, programs, readback and
//! tuning), `ops/` (each op's plan, buffers and dispatches, built on the runtime and the
//! kernels of `kernels/`) and `api/` (the call descriptions and the public verbs).

mod api;
mod kernels;
mod ops;
mod runtime;

#[cfg(not(target_arch = "wasm32"))]
pub use api::BandwidthCall;
pub use api::{
    Call, CrossEntropyShards, Grad, Input, LinearCall, LinearShards, LossCall, LossKind,
    MatmulCall, Prepare, ShardedCall, SoftmaxCall, SoftmaxShards, TargetInput,
};
#[cfg(not(target_arch = "wasm32"))]
pub use ops::bandwidth::PreparedBandwidth;
pub use ops::linear::device::DeviceLinear;
pub use ops::linear::shard::{LinearShard, LinearShardGrads, PreparedLinearShard};
pub use ops::linear::shard_device::{DeviceLinearShard, PreparedLinearShardDevice};
pub use ops::linear::{PreparedLinear, PreparedMatmul};
pub use ops::loss::{DeviceShard, PreparedLoss, PreparedShard, PreparedShardDevice, VocabShard};
pub use ops::shard_host::PreparedHostShard;
pub use ops::softmax::PreparedSoftmax;
pub use runtime::context::Context;
pub use runtime::device_tensor::DeviceTensor;
pub use runtime::info::ContextInfo;
pub use runtime::tuning::{ContextOptions, Tuning};
