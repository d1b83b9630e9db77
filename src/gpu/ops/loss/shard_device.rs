//! One vocabulary shard of a cross_entropy on tensors already on the device, recorded into the
//! caller's encoder: the shard's per-row partials into a buffer whose layout is part of the
//! contract, so that any transport (a host copy, MPI, another device's queue) can move them;
//! then, once the caller has written every row's merged statistics back, the shard's slice of
//! the gradient.
//!
//! Each row of a device shard is one segment (`cross_entropy_partials` with one workgroup per
//! row), so its partial is one pair of vec4s, `[2, N, 4]` f32:
//! - plane 0, row n: (max, sum_exp, q, a), with a = Σ q_c (z_c - r);
//! - plane 1, row n: (r, z_target, found, 0): r is the reference a is taken against (any
//!   finite value: the kernel picks one that keeps a small), found is 1 where the row's
//!   target class lies in the shard. Rows and classes: at least one of each.
//!
//! [`crate::shard::Partial::from_planes`] reads one row. For the gradient the caller
//! writes each row's merged (max, sum_exp, q, lse) ([`crate::shard::Partial::stats`])
//! over plane 0, [`PreparedShardDevice::merged`].
//!
//! [`PreparedShardDevice`] is the one recorded form of a shard: a device `linear_cross_entropy`
//! shard (src/gpu/ops/linear/shard_device.rs) is one too, and the host shards read one back
//! (src/gpu/ops/shard_host.rs).

use super::buffers::ChunkInputs;
use super::shard_kernels::{ShardGrad, ShardKernels, ShardRows};
use crate::error::{Result, XentError};
use crate::gpu::api::Grad;
use crate::gpu::ops::loss::shard_kernels::{device_split, shard_kernels, shard_spec};
use crate::gpu::runtime::cancel::record_settled;
use crate::gpu::runtime::context::Context;
use crate::gpu::runtime::device_tensor::{Access, DeviceTensor};
use crate::gpu::runtime::program::record;
use crate::gpu::runtime::program::Program;
use crate::options::{DType, LossOptions};

/// A shard on the device: f32 logits `[N, Cs]` of classes `first_class ..` of `classes`,
/// class targets `[N]` over all C (i32, u32 or i64), and where its gradient goes. The
/// targets are checked on the device: [`PreparedShardDevice::check_targets`] reads it.
#[derive(Clone, Copy, Debug)]
pub struct DeviceShard<'a> {
    /// This shard's f32 logits `[N, Cs]`.
    pub logits: &'a DeviceTensor,
    /// The class targets `[N]` over all C (i32, u32 or i64), checked on the device.
    pub target: &'a DeviceTensor,
    /// The first of its classes: it holds `first_class .. first_class + Cs` of C.
    pub first_class: usize,
    /// C, the classes of all shards together.
    pub classes: usize,
    /// `Grad::Into(&[&g])`: an f32 tensor `[N, Cs]` for the shard's gradient; `Grad::None`:
    /// partials only.
    pub grad: Grad<'a>,
    /// PyTorch's loss options (`weight`: all C classes).
    pub options: LossOptions<'a>,
}

/// A shard prepared on the device ([`DeviceShard`], or a `crate::DeviceLinearShard`): record
/// its partials, merge, record its gradient.
pub struct PreparedShardDevice {
    ctx: Context,
    /// Recorded before either program (a linear shard's widening of 16-bit inputs).
    prelude: Program,
    partials: Program,
    grad: Option<Program>,
    // Keeps the buffers the programs bind.
    kernels: ShardKernels,
}

impl PreparedShardDevice {
    /// The shard's programs: `prelude` before each of the others, `partials` and `grad`.
    pub(crate) fn new(
        ctx: &Context,
        (prelude, partials, grad): (Program, Program, Option<Program>),
        kernels: ShardKernels,
    ) -> Self {
        Self {
            ctx: ctx.clone(),
            prelude,
            partials,
            grad,
            kernels,
        }
    }

    /// The programs of a shard without a prelude (a host shard's, over f32 uploads): the
    /// partials and the gradient, run by the host adapter with its reads in one submission.
    pub(crate) fn programs(&self) -> (&Program, Option<&Program>) {
        debug_assert_eq!(self.prelude.len(), 0, "a host shard has no prelude");
        (&self.partials, self.grad.as_ref())
    }

    /// The partials of every row, `[2, N·K, 4]`, and K (1 but for a host shard's).
    pub(crate) fn all_partials(&self) -> (&wgpu::Buffer, usize) {
        (&self.kernels.out, self.kernels.segments)
    }
}

pub(crate) fn build_shard_device(ctx: &Context, call: DeviceShard) -> Result<PreparedShardDevice> {
    let opts = &call.options;
    let (logits, target) = (call.logits, call.target);
    let &[n, cs] = logits.shape() else {
        return Err(XentError::InvalidShape(format!(
            "a shard's logits are [N, Cs], got {:?}",
            logits.shape()
        )));
    };
    if logits.dtype() != DType::F32 {
        return Err(XentError::InvalidArgument(format!(
            "a device shard's logits are f32, not {:?}",
            logits.dtype()
        )));
    }
    let grad_into = call.grad.tensors("a device shard", 1..=1)?.map(|g| g[0]);
    if let Some(g) = grad_into {
        if g.dtype() != DType::F32 || g.shape() != [n, cs] {
            return Err(XentError::InvalidShape(format!(
                "the shard's gradient is f32 [{n}, {cs}], not {:?} {:?}",
                g.dtype(),
                g.shape()
            )));
        }
    }
    let shape = ShardRows {
        rows: n,
        first_class: call.first_class,
        shard_classes: cs,
        classes: call.classes,
    };
    let spec = shard_spec(shape, target, opts)?;
    let split = device_split(ctx, n, cs)?;
    let (mut staged_in, mut staged_out) = (Program::default(), Program::default());
    let chunk = ChunkInputs {
        logits: logits.grouped(ctx, &mut staged_in, Access::Read)?,
        targets: target.bound(),
        probs: None,
        rows: 0..n,
        elems: 0..n * cs,
        seg_first: 0,
        classes: call.first_class..call.first_class + cs,
    };
    let grad = match grad_into {
        Some(g) => ShardGrad::Into(g.grouped(ctx, &mut staged_out, Access::Write)?),
        None => ShardGrad::None,
    };
    let kernels = shard_kernels(ctx, (shape, spec), opts, (split, vec![chunk]), grad)?;
    let mut partials = staged_in;
    kernels.push_target_check(&mut partials)?;
    kernels.push_partials(&mut partials, 0)?;
    let grad = match grad_into {
        Some(_) => {
            let mut g = Program::default();
            kernels.push_dens(&mut g)?;
            kernels.push_grad(&mut g, 0)?;
            g.append(staged_out);
            Some(g)
        }
        None => None,
    };
    let programs = (Program::default(), partials, grad);
    Ok(PreparedShardDevice::new(ctx, programs, kernels))
}

impl PreparedShardDevice {
    /// Records the shard's partials into `encoder` (after whatever wrote its logits):
    /// [`PreparedShardDevice::partials`] holds them once it has run.
    pub fn record_partials(&self, encoder: &mut wgpu::CommandEncoder) {
        self.record_prelude(encoder);
        record_settled(&self.ctx, encoder, &self.partials);
    }

    fn record_prelude(&self, encoder: &mut wgpu::CommandEncoder) {
        if self.prelude.len() > 0 {
            record(encoder, &self.prelude, None);
        }
    }

    /// Reads the check of the targets made by the last submitted
    /// [`PreparedShardDevice::record_partials`] (waiting for it): a class target past C
    /// (other than `ignore_index`) is an `Err` naming its row, as the host API's. The
    /// partials of such a row are wrong.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn check_targets(&self) -> Result<()> {
        self.kernels.read_target_check()
    }

    /// The async form of [`PreparedShardDevice::check_targets`].
    pub async fn check_targets_async(&self) -> Result<()> {
        self.kernels.read_target_check_async().await
    }

    /// The partials, `[2, N, 4]` f32 (the layout: this module's header). Past
    /// `max_binding_bytes / 32` rows this is larger than one binding: copy or read it, don't
    /// bind it whole.
    pub fn partials(&self) -> DeviceTensor {
        let rows = self.kernels.rows * self.kernels.segments;
        DeviceTensor::from_parts(self.kernels.out.clone(), vec![2, rows, 4], DType::F32)
    }

    /// Where the merged statistics go before [`PreparedShardDevice::record_grad`]: `[N, 4]`
    /// f32, each row's (max, sum_exp, q, lse) over all C classes, over plane 0 of the
    /// partials.
    pub fn merged(&self) -> DeviceTensor {
        let rows = self.kernels.rows * self.kernels.segments;
        DeviceTensor::from_parts(self.kernels.out.clone(), vec![rows, 4], DType::F32)
    }

    /// Records the shard's slice of the gradient into `encoder` (upstream gradient 1; of the
    /// summed losses for `none`): from [`PreparedShardDevice::merged`], and the shard's inputs
    /// as they are now (which should be as `record_partials` read them). An error when the
    /// shard was made without a gradient.
    pub fn record_grad(&self, encoder: &mut wgpu::CommandEncoder) -> Result<()> {
        let program = self.grad.as_ref().ok_or_else(|| {
            XentError::InvalidArgument(
                "the shard was prepared without a gradient (Grad::Into)".into(),
            )
        })?;
        self.record_prelude(encoder);
        record_settled(&self.ctx, encoder, program);
        Ok(())
    }
}
