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
pub use gpu::{
    BandwidthCall, Call, Context, ContextInfo, ContextOptions, CrossEntropyShards, DeviceLinear,
    DeviceLinearShard, DeviceShard, DeviceTensor, Grad, Input, LinearCall, LinearShard,
    LinearShardGrads, LinearShards, LossCall, LossKind, MatmulCall, Prepare, PreparedBandwidth,
    PreparedHostShard, PreparedLinear, PreparedLinearShard, PreparedLinearShardDevice,
    PreparedLoss, PreparedMatmul, PreparedShard, PreparedShardDevice, PreparedSoftmax, ShardedCall,
    SoftmaxCall, SoftmaxShards, TargetInput, Tuning, VocabShard,
};
pub use linear::{Linear, LinearOutput, LinearProblem, DEFAULT_LINEAR_BUDGET};
pub use options::{
    BackwardOptions, DType, FloatTensor, LossAndGrad, LossOptions, Output, Reduction, Target,
    Tensor, DEFAULT_IGNORE_INDEX,
};
