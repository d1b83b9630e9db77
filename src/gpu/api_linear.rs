//! The public API of the large-vocabulary calls: `linear_cross_entropy`, the matrix product
//! it is built on, and cross_entropy over vocabulary shards (the rest of the ops:
//! src/gpu/api.rs).

use super::context::Context;
use super::kernels::Entry;
use super::linear::device::{DeviceLinear, PreparedLinearDevice};
use super::linear::shard::{LinearShard, PreparedLinearShard};
use super::linear::shard_device::{DeviceLinearShard, PreparedLinearShardDevice};
use super::linear::{PreparedLinear, PreparedMatmul};
use super::loss::{DeviceShard, PreparedShard, PreparedShardDevice, VocabShard};
use super::softmax::shard::run_softmax_sharded;
use super::tuning::ContextOptions;
use crate::error::Result;
use crate::linear::{Linear, LinearOutput};
use crate::options::{LossOptions, Output, Target, Tensor};

impl Context {
    /// `torch.nn.functional.linear_cross_entropy`: `cross_entropy(input @ linear_weight.T +
    /// linear_bias, target, ...)`, without the `[N, C]` logits ever in memory: they are
    /// computed `Linear::budget` bytes of rows at a time, reduced, and dropped.
    ///
    /// ```
    /// use wgpu_xent::{Context, Linear, Target, Tensor};
    /// let ctx = Context::new()?;
    /// let (x, w, t) = ([1.0f32, 2.0, 0.0, -1.0], [0.5f32, -0.5, 1.0, 0.0, 0.0, 1.0], [2i64, 0]);
    /// let linear = Linear::new(Tensor::new(&x, &[2, 2]), Tensor::new(&w, &[3, 2]));
    /// let target = Target::I64(Tensor::new(&t, &[2]));
    /// let loss = ctx.linear_cross_entropy(linear, target, &Default::default())?;
    /// assert!(loss.scalar().is_finite());
    /// # Ok::<(), wgpu_xent::XentError>(())
    /// ```
    pub fn linear_cross_entropy(
        &self,
        linear: Linear,
        target: Target,
        opts: &LossOptions,
    ) -> Result<Output> {
        Ok(self
            .prepare_linear_cross_entropy(linear, target, opts, false)?
            .run()?
            .loss)
    }

    /// [`Context::linear_cross_entropy`] and its gradients with respect to the input, the
    /// linear weight and the bias (of the summed losses for `Reduction::None`).
    pub fn linear_cross_entropy_backward(
        &self,
        linear: Linear,
        target: Target,
        opts: &LossOptions,
    ) -> Result<LinearOutput> {
        self.prepare_linear_cross_entropy(linear, target, opts, true)?
            .run()
    }

    /// Uploads a `linear_cross_entropy` (with its backward when `grad`) once, to run it many
    /// times.
    pub fn prepare_linear_cross_entropy(
        &self,
        linear: Linear,
        target: Target,
        opts: &LossOptions,
        grad: bool,
    ) -> Result<PreparedLinear> {
        self.build_linear(linear, target, opts, grad)
    }

    /// Builds a `linear_cross_entropy` over tensors already on the device (see
    /// [`DeviceLinear`]): hidden states and classifier in f32, f16 or bf16, class targets, and with
    /// [`DeviceLinear::grads_into`] the gradients written into your tensors. Record it into
    /// your own encoder with [`PreparedLinearDevice::record`] as often as their contents
    /// change; the loss stays on the device ([`PreparedLinearDevice::loss`]) until
    /// [`PreparedLinearDevice::read_loss`], which also reports a class target out of range.
    /// Each tensor must fit one binding (a [`crate::DeviceTensor`]'s rule); the logits are
    /// held `budget` bytes at a time, as in the host API, and the mean's D is summed on the
    /// device.
    pub fn prepare_linear_cross_entropy_device(
        &self,
        call: DeviceLinear,
        opts: &LossOptions,
    ) -> Result<PreparedLinearDevice> {
        self.build_linear_device(call, opts)
    }

    /// The matrix product `a @ b.T` of `a` `[M, K]` and `b` `[N, K]` (both contiguous along
    /// K, as a classifier weight is): `[M, N]`, accumulated in f32.
    pub fn matmul(&self, a: Tensor<f32>, b: Tensor<f32>) -> Result<Output> {
        Ok(self.prepare_matmul(a, b)?.run_timed()?.0)
    }

    /// Uploads a [`Context::matmul`] once, to run it many times (`xent bench --op matmul`).
    pub fn prepare_matmul(&self, a: Tensor<f32>, b: Tensor<f32>) -> Result<PreparedMatmul> {
        self.build_matmul(a, b)
    }
}

/// Vocabulary shards: the contract of [`crate::cpu::shard`] on the GPU.
impl Context {
    /// One vocabulary shard of a `cross_entropy` on this context: its logits `[N, Cs]`
    /// (classes `first_class ..` of C), class targets `[N]` over all C classes or this shard's
    /// own slice `[N, Cs]` of the probabilities, and the options (weights over all C).
    /// [`PreparedShard::partials`] gives each row's [`crate::cpu::shard::Partial`]; merge
    /// every shard's in shard order ([`crate::cpu::shard::merge`], after any all-gather),
    /// then [`PreparedShard::grad`] writes this shard's slice of the gradient.
    pub fn prepare_cross_entropy_shard(
        &self,
        shard: VocabShard,
        target: Target,
        opts: &LossOptions,
        grad: bool,
    ) -> Result<PreparedShard> {
        self.build_scoped(|| self.build_shard(shard, target, opts, grad))
    }

    /// One vocabulary shard of a `cross_entropy` on tensors already on this device, recorded
    /// into your encoder: [`PreparedShardDevice::record_partials`] writes each row's partial
    /// into [`PreparedShardDevice::partials`] (`[2, N, 4]` f32, read with
    /// [`crate::cpu::shard::Partial::from_planes`]); move and merge them by any means, write
    /// the merged statistics into [`PreparedShardDevice::merged`], then
    /// [`PreparedShardDevice::record_grad`] writes the shard's gradient into
    /// [`DeviceShard::grad_into`]. The mean's denominator is summed from the device targets.
    pub fn prepare_cross_entropy_shard_device(
        &self,
        call: DeviceShard,
        opts: &LossOptions,
    ) -> Result<PreparedShardDevice> {
        self.build_scoped(|| self.build_shard_device(call, opts))
    }

    /// One vocabulary shard of a `linear_cross_entropy` on this context: the hidden states
    /// `[N, D]` and this shard's slice of the classifier weight `[Cs, D]` (and bias), targets
    /// as [`Context::prepare_cross_entropy_shard`] takes them. Its partials merge with the
    /// other shards' as a `cross_entropy` shard's do; from the merged partials,
    /// [`PreparedLinearShard::grads`] gives its slices of the weight's and bias's gradients
    /// and its share of the input's, which the caller sums over the shards.
    pub fn prepare_linear_cross_entropy_shard(
        &self,
        shard: LinearShard,
        target: Target,
        opts: &LossOptions,
        grad: bool,
    ) -> Result<PreparedLinearShard> {
        self.build_scoped(|| self.build_linear_shard(shard, target, opts, grad))
    }

    /// One vocabulary shard of a `linear_cross_entropy` on tensors already on this device,
    /// fused (see [`DeviceLinearShard`]): its logits are computed `budget` bytes at a time and
    /// never held whole. [`PreparedLinearShardDevice::record_partials`] writes each row's
    /// partial into [`PreparedLinearShardDevice::partials`] (`[2, N, 4]` f32, as
    /// [`Context::prepare_cross_entropy_shard_device`]'s); move and merge them by any means,
    /// write the merged statistics into [`PreparedLinearShardDevice::merged`], then
    /// [`PreparedLinearShardDevice::record_grads`] writes the shard's gradients.
    pub fn prepare_linear_cross_entropy_shard_device(
        &self,
        shard: DeviceLinearShard,
        opts: &LossOptions,
    ) -> Result<PreparedLinearShardDevice> {
        self.build_scoped(|| self.build_linear_shard_device(shard, opts))
    }

    /// `cross_entropy` of logits `[N, C]` held as class shards `[N, Cs_k]` (classes in shard
    /// order, C = Σ Cs_k), every option included, and with `grad` each shard's own slice of
    /// the gradient (upstream gradient 1). Shard k runs on `devices[k % devices.len()]`, the
    /// shards concurrently; their partials are merged on the host in shard order and the loss
    /// is reduced from them in f64. The result is the same bits on every run.
    pub fn cross_entropy_sharded(
        devices: &[Context],
        shards: &[Tensor<f32>],
        target: Target,
        opts: &LossOptions,
        grad: bool,
    ) -> Result<(Output, Option<Vec<Output>>)> {
        super::loss::run_sharded(devices, shards, target, opts, grad)
    }

    /// [`Context::linear_cross_entropy_backward`] (with `grad`; else the loss alone) with
    /// the classifier's classes split into even slices over `devices` (fewer when C is
    /// smaller): each slice's logits `[N, C/R]` on its device, the partials merged on the host
    /// in shard order, and the input's gradient summed over the shards in that order.
    pub fn linear_cross_entropy_sharded(
        devices: &[Context],
        linear: Linear,
        target: Target,
        opts: &LossOptions,
        grad: bool,
    ) -> Result<LinearOutput> {
        super::linear::shards::run_linear_sharded(devices, linear, target, opts, grad)
    }

    /// `log_softmax` (`log`) or `softmax` of rows held as class shards `[rows, Cs_k]` (the
    /// class axis last, classes in shard order): each shard's slice of the output. Shard k
    /// runs on `devices[k % devices.len()]`; each row's (max, sum-exp) partials are merged on
    /// the host in shard order between the shards' two passes.
    pub fn softmax_sharded(
        devices: &[Context],
        shards: &[Tensor<f32>],
        log: bool,
    ) -> Result<Vec<Output>> {
        let entry = if log {
            Entry::LogSoftmax
        } else {
            Entry::Softmax
        };
        run_softmax_sharded(devices, entry, shards, None)
    }

    /// The backward of [`Context::softmax_sharded`]: each shard's slice of the input's
    /// gradient, from the shards of the upstream gradient and of the forward output (each
    /// row's Σ merged on the host in shard order).
    pub fn softmax_backward_sharded(
        devices: &[Context],
        grad_out: &[Tensor<f32>],
        out: &[Tensor<f32>],
        log: bool,
    ) -> Result<Vec<Output>> {
        let entry = match log {
            true => Entry::LogSoftmaxBackward,
            false => Entry::SoftmaxBackward,
        };
        run_softmax_sharded(devices, entry, out, Some(grad_out))
    }

    /// `count` contexts to hold shards: each adapter wgpu finds (on the backends
    /// `WGPU_BACKEND` names, e.g. `vulkan,gl`) in turn, one device each, so that with fewer
    /// adapters than `count` an adapter holds several devices.
    pub fn for_shards(count: usize, options: ContextOptions) -> Result<Vec<Context>> {
        super::poller::block(Self::for_shards_async(count, options))
    }
}
