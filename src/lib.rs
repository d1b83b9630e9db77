// In a browser wgpu's handles are neither Send nor Sync (WebGPU objects live on one thread),
// so the `Arc`s that share them natively hold them there too, on that one thread.
#![cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]
#![doc = include_str!("../README.md")]

pub mod cpu;
mod error;
mod geometry;
mod gpu;
mod layout;
mod linear;
#[cfg(feature = "ndarray")]
pub mod ndarray;
mod options;
mod problem;
pub mod shard;
pub use problem::{check_cross_entropy, check_nll_loss};

pub use error::{Result, XentError};
#[cfg(not(target_arch = "wasm32"))]
pub use gpu::{BandwidthCall, PreparedBandwidth};
pub use gpu::{
    Call, Context, ContextInfo, ContextOptions, CrossEntropyShards, DeviceLinear,
    DeviceLinearShard, DeviceShard, DeviceTensor, Grad, Input, LinearCall, LinearShard,
    LinearShardGrads, LinearShards, LossCall, LossKind, MatmulCall, Prepare, PreparedHostShard,
    PreparedLinear, PreparedLinearShard, PreparedLinearShardDevice, PreparedLoss, PreparedMatmul,
    PreparedShard, PreparedShardDevice, PreparedSoftmax, ShardedCall, SoftmaxCall, SoftmaxShards,
    TargetInput, Tuning, VocabShard,
};
pub use linear::{Linear, LinearOutput, LinearProblem, DEFAULT_LINEAR_BUDGET};
pub use options::{
    BackwardOptions, DType, FloatTensor, LossAndGrad, LossOptions, Output, Reduction, Target,
    Tensor, DEFAULT_IGNORE_INDEX,
};
