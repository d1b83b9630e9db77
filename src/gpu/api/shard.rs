//! Vocabulary shards as call descriptions: one shard on one context (each holds its classes'
//! slice, its targets, options and `Grad`: `ctx.prepare(&shard)`), and whole calls over
//! several contexts (`CrossEntropyShards`, `LinearShards`, `SoftmaxShards`:
//! `Context::run_sharded(&contexts, &call)` or its async form).

use super::call::Grad;
use super::Prepare;
use crate::error::Result;
use crate::gpu::kernels::Entry;
use crate::gpu::ops::linear::shard::build_linear_shard;
use crate::gpu::ops::linear::shard::{LinearShard, PreparedLinearShard};
use crate::gpu::ops::linear::shard_device::build_linear_shard_device;
use crate::gpu::ops::linear::shard_device::{DeviceLinearShard, PreparedLinearShardDevice};
use crate::gpu::ops::linear::shards::run_linear_sharded;
use crate::gpu::ops::loss::shard::build_shard;
use crate::gpu::ops::loss::shard_device::build_shard_device;
use crate::gpu::ops::loss::{
    run_sharded, DeviceShard, PreparedShard, PreparedShardDevice, VocabShard,
};
use crate::gpu::ops::softmax::shard::run_softmax_sharded;
use crate::gpu::runtime::context::Context;
use crate::gpu::runtime::tuning::ContextOptions;
use crate::linear::{Linear, LinearOutput};
use crate::options::{LossOptions, Output, Target, Tensor};
use std::future::Future;

impl Prepare for VocabShard<'_> {
    type Prepared = PreparedShard;

    fn build(&self, ctx: &Context) -> Result<PreparedShard> {
        let grad = self.grad.returned("a host shard")?;
        build_shard(ctx, *self, self.target, &self.options, grad)
    }
}

impl Prepare for DeviceShard<'_> {
    type Prepared = PreparedShardDevice;

    fn build(&self, ctx: &Context) -> Result<PreparedShardDevice> {
        build_shard_device(ctx, *self)
    }
}

impl Prepare for LinearShard<'_> {
    type Prepared = PreparedLinearShard;

    fn build(&self, ctx: &Context) -> Result<PreparedLinearShard> {
        let grad = self.grad.returned("a host linear shard")?;
        build_linear_shard(ctx, *self, self.target, &self.options, grad)
    }
}

impl Prepare for DeviceLinearShard<'_> {
    type Prepared = PreparedLinearShardDevice;

    fn build(&self, ctx: &Context) -> Result<PreparedLinearShardDevice> {
        build_linear_shard_device(ctx, *self)
    }
}

/// A call over several contexts, one shard of the classes each (shard k on
/// `contexts[k % len]`): [`Context::run_sharded`] and [`Context::run_sharded_async`].
pub trait ShardedCall {
    /// What one run returns.
    type Output;
    /// Runs the call over `contexts`. Called by [`Context::run_sharded`].
    fn run_on(&self, contexts: &[Context]) -> impl Future<Output = Result<Self::Output>>;
}

/// `cross_entropy` over `[N, C]` logits held as class shards `[N, Cs]`, in order: each
/// shard's partials, their merge on the host in shard order, the loss, and with
/// `Grad::Returned` each shard's gradient slice.
#[derive(Clone, Copy, Debug)]
pub struct CrossEntropyShards<'a> {
    /// The logits' class shards, `[N, Cs]` each, in class order.
    pub shards: &'a [Tensor<'a, f32>],
    /// Class targets `[N]`, or probabilities `[N, C]`.
    pub target: Target<'a>,
    /// PyTorch's loss options.
    pub options: LossOptions<'a>,
    /// `Grad::Returned` for each shard's gradient slice, or `Grad::None`.
    pub grad: Grad<'a>,
}

impl ShardedCall for CrossEntropyShards<'_> {
    type Output = (Output, Option<Vec<Output>>);

    async fn run_on(&self, contexts: &[Context]) -> Result<Self::Output> {
        let grad = self.grad.returned("a sharded cross_entropy")?;
        run_sharded(contexts, self.shards, self.target, &self.options, grad).await
    }
}

/// `linear_cross_entropy` with the classifier's classes cut into even slices over the
/// contexts, the partials merged on the host in shard order, dX summed in that order.
#[derive(Clone, Copy, Debug)]
pub struct LinearShards<'a> {
    /// The hidden states and the whole classifier.
    pub linear: Linear<'a>,
    /// Class targets `[N]`, or probabilities `[N, C]`.
    pub target: Target<'a>,
    /// PyTorch's loss options.
    pub options: LossOptions<'a>,
    /// `Grad::Returned` for the gradients, or `Grad::None`.
    pub grad: Grad<'a>,
}

impl ShardedCall for LinearShards<'_> {
    type Output = LinearOutput;

    async fn run_on(&self, contexts: &[Context]) -> Result<LinearOutput> {
        let grad = self.grad.returned("a sharded linear_cross_entropy")?;
        run_linear_sharded(contexts, self.linear, self.target, &self.options, grad).await
    }
}

/// `log_softmax` (`log`) or `softmax` along the last dim of `[N, C]` held as class shards,
/// one output shard each: (max, sum-exp) merged between each shard's two passes. With
/// `backward`, the backward pass (`shards` then hold the forward's output).
#[derive(Clone, Copy, Debug)]
pub struct SoftmaxShards<'a> {
    /// The class shards `[N, Cs]`, in class order.
    pub shards: &'a [Tensor<'a, f32>],
    /// log_softmax when true, softmax when false.
    pub log: bool,
    /// The upstream gradient's shards: the backward pass.
    pub backward: Option<&'a [Tensor<'a, f32>]>,
}

impl ShardedCall for SoftmaxShards<'_> {
    type Output = Vec<Output>;

    async fn run_on(&self, contexts: &[Context]) -> Result<Vec<Output>> {
        let entry = match (self.log, self.backward.is_some()) {
            (true, false) => Entry::LogSoftmax,
            (false, false) => Entry::Softmax,
            (true, true) => Entry::LogSoftmaxBackward,
            (false, true) => Entry::SoftmaxBackward,
        };
        run_softmax_sharded(contexts, entry, self.shards, self.backward).await
    }
}

/// Calls over several contexts.
impl Context {
    /// Runs a sharded call over `contexts`, blocking this thread until its results are read.
    /// The shards' runs are joined, so their devices work at once.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run_sharded<C: ShardedCall>(contexts: &[Context], call: &C) -> Result<C::Output> {
        // Not `poller::block`: the shards' waits go to their contexts' poller threads, so
        // that every device runs while this thread waits for all of them.
        pollster::block_on(call.run_on(contexts))
    }

    /// The async form of [`Context::run_sharded`].
    pub async fn run_sharded_async<C: ShardedCall>(
        contexts: &[Context],
        call: &C,
    ) -> Result<C::Output> {
        call.run_on(contexts).await
    }

    /// A context on each of up to `count` adapters (or several on one), for shards.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn for_shards(count: usize, options: ContextOptions) -> Result<Vec<Context>> {
        crate::gpu::runtime::poller::block(Self::for_shards_async(count, options))
    }

    /// The async form of [`Context::for_shards`].
    pub async fn for_shards_async(count: usize, options: ContextOptions) -> Result<Vec<Context>> {
        crate::gpu::runtime::adapter::for_shards_async(count, options).await
    }
}
