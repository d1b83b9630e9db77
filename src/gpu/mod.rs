//! The GPU path: one [`Context`] owns the device and the pipelines; ops are its methods.

mod adapter;
mod api;
mod api_linear;
mod bandwidth;
mod buffers;
mod cancel;
mod context;
mod convert;
mod device;
mod device_tensor;
mod info;
mod kernels;
mod linear;
mod loss;
mod poller;
mod probe;
mod program;
mod readback;
mod reduce;
mod run_lock;
mod scope;
mod softmax;
mod switches;
mod timestamps;
mod tuning;

pub use bandwidth::PreparedBandwidth;
pub use context::Context;
pub use device::DeviceLoss;
pub use device_tensor::DeviceTensor;
pub use info::ContextInfo;
pub use linear::device::{DeviceLinear, PreparedLinearDevice};
pub use linear::shard::{LinearShard, LinearShardGrads, PreparedLinearShard};
pub use linear::shard_device::{DeviceLinearShard, PreparedLinearShardDevice};
pub use linear::{PreparedLinear, PreparedMatmul};
pub use loss::{
    loss_of_merged, DeviceShard, PreparedLoss, PreparedShard, PreparedShardDevice, VocabShard,
};
pub use softmax::PreparedSoftmax;
pub use tuning::{ContextOptions, Tuning};
