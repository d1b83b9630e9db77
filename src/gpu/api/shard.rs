//! Vocabulary shards as call descriptions (each shard holds its classes' slice, its targets
//! and options: `ctx.prepare(&shard)`), and the sharded calls over several contexts.

use super::Prepare;
use crate::error::Result;
use crate::gpu::kernels::Entry;
use crate::gpu::ops::linear::shard::{LinearShard, PreparedLinearShard};
use crate::gpu::ops::linear::shard_device::{DeviceLinearShard, PreparedLinearShardDevice};
use crate::gpu::ops::loss::{DeviceShard, PreparedShard, PreparedShardDevice, VocabShard};
use crate::gpu::ops::softmax::shard::run_softmax_sharded;
use crate::gpu::runtime::context::Context;
use crate::gpu::runtime::tuning::ContextOptions;
use crate::linear::{Linear, LinearOutput};
use crate::options::{LossOptions, Output, Target, Tensor};

impl Prepare for VocabShard<'_> {
    type Prepared = PreparedShard;

    fn build(&self, ctx: &Context) -> Result<PreparedShard> {
        let grad = self.grad.returned("a host shard")?;
        ctx.build_shard(*self, self.target, &self.options, grad)
    }
}

impl Prepare for DeviceShard<'_> {
    type Prepared = PreparedShardDevice;

    fn build(&self, ctx: &Context) -> Result<PreparedShardDevice> {
        ctx.build_shard_device(*self)
    }
}

impl Prepare for LinearShard<'_> {
    type Prepared = PreparedLinearShard;

    fn build(&self, ctx: &Context) -> Result<PreparedLinearShard> {
        let grad = self.grad.returned("a host linear shard")?;
        ctx.build_linear_shard(*self, self.target, &self.options, grad)
    }
}

impl Prepare for DeviceLinearShard<'_> {
    type Prepared = PreparedLinearShardDevice;

    fn build(&self, ctx: &Context) -> Result<PreparedLinearShardDevice> {
        ctx.build_linear_shard_device(*self)
    }
}

/// Calls over several contexts, one shard of the classes each.
impl Context {
    /// `cross_entropy` over `[N, C]` logits held as class shards `[N, Cs]`, in order, one
    /// shard per device (round robin when there are more shards than devices): each shard's
    /// partials, their merge on the host, the loss, and with `grad` each shard's gradient
    /// slice.
    pub fn cross_entropy_sharded(
        devices: &[Context],
        shards: &[Tensor<f32>],
        target: Target,
        opts: &LossOptions,
        grad: bool,
    ) -> Result<(Output, Option<Vec<Output>>)> {
        crate::gpu::ops::loss::run_sharded(devices, shards, target, opts, grad)
    }

    /// `linear_cross_entropy` with the classifier's classes split over `devices`.
    pub fn linear_cross_entropy_sharded(
        devices: &[Context],
        linear: Linear,
        target: Target,
        opts: &LossOptions,
        grad: bool,
    ) -> Result<LinearOutput> {
        crate::gpu::ops::linear::shards::run_linear_sharded(devices, linear, target, opts, grad)
    }

    /// `log_softmax` (`log`) or `softmax` along the last dim of `[N, C]` held as class shards,
    /// one output shard each; `grad_out` given, the backward pass (`shards` then hold the
    /// forward's output).
    pub fn softmax_sharded(
        devices: &[Context],
        shards: &[Tensor<f32>],
        log: bool,
        grad_out: Option<&[Tensor<f32>]>,
    ) -> Result<Vec<Output>> {
        let entry = match (log, grad_out.is_some()) {
            (true, false) => Entry::LogSoftmax,
            (false, false) => Entry::Softmax,
            (true, true) => Entry::LogSoftmaxBackward,
            (false, true) => Entry::SoftmaxBackward,
        };
        run_softmax_sharded(devices, entry, shards, grad_out)
    }

    /// A context on each of up to `count` adapters (or several on one), for shards.
    pub fn for_shards(count: usize, options: ContextOptions) -> Result<Vec<Context>> {
        crate::gpu::runtime::poller::block(Self::for_shards_async(count, options))
    }
}
