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
//! [`crate::cpu::shard::Partial::from_planes`] reads one row. For the gradient the caller
//! writes each row's merged (max, sum_exp, q, lse) ([`crate::cpu::shard::Partial::stats`])
//! over plane 0, [`PreparedShardDevice::merged`].

use super::buffers::{ChunkBuffers, ChunkInputs, Common};
use super::plan::{LossPlan, LossSpec};
use super::{Grad, Loss, Request};
use crate::error::{Result, XentError};
use crate::geometry::rows::{self, Split};
use crate::gpu::context::Context;
use crate::gpu::device_tensor::{Access, DeviceTensor};
use crate::gpu::kernels::{Entry, KernelKey};
use crate::gpu::program::Program;
use crate::layout::RowLayout;
use crate::options::{DType, Float, LossOptions, Reduction};
use crate::problem::check_loss_shapes;

/// A shard on the device: f32 logits `[N, Cs]` of classes `first_class ..` of `classes`,
/// class targets `[N]` over all C (i32, u32 or i64), and where its gradient goes.
#[derive(Clone, Copy, Debug)]
pub struct DeviceShard<'a> {
    pub logits: &'a DeviceTensor,
    pub target: &'a DeviceTensor,
    pub first_class: usize,
    pub classes: usize,
    /// An f32 tensor `[N, Cs]` for the shard's gradient; `None`: partials only.
    pub grad_into: Option<&'a DeviceTensor>,
}

/// A [`DeviceShard`] prepared: record its partials, merge, record its gradient.
pub struct PreparedShardDevice {
    ctx: Context,
    partials: Program,
    grad: Option<Program>,
    stats: wgpu::Buffer,
    rows: usize,
    // Keeps the buffers the programs bind.
    _common: Common,
    _chunk: ChunkBuffers,
}

impl Context {
    pub(crate) fn build_shard_device(
        &self,
        call: DeviceShard,
        opts: &LossOptions,
    ) -> Result<PreparedShardDevice> {
        let (n, cs, spec) = self.shard_device_spec(&call, opts)?;
        let t = self.walk_tuning();
        let split = one_segment(&t, n, cs)?;
        let grad = match call.grad_into {
            Some(_) => Grad::OutOfPlace,
            None => Grad::None,
        };
        let req = Request {
            grad,
            ..Request::forward(Loss::CrossEntropy)
        };
        let (mut staged_in, mut staged_out) = (Program::default(), Program::default());
        let logits = call.logits.grouped(self, &mut staged_in, Access::Read)?;
        let mut spec = spec;
        spec.grad_into = call
            .grad_into
            .map(|g| g.grouped(self, &mut staged_out, Access::Write))
            .transpose()?;
        let variant = self.variant(Float::F32, [logits.size]);
        let plan =
            LossPlan::new(&spec, opts, req, variant, &t)?.split_into(split, t.workgroup_size);
        let input = ChunkInputs {
            logits,
            targets: call.target.bound(),
            probs: None,
            rows: 0..n,
            elems: 0..n * cs,
            seg_first: 0,
            classes: call.first_class..call.first_class + cs,
        };
        let common = self.loss_common(&spec, opts)?;
        let mut bufs = self.chunk_buffers((&spec, opts, req), &plan, vec![input])?;
        let chunk = bufs
            .pop()
            .ok_or_else(|| XentError::InvalidShape("no rows".into()))?;
        let mut partials = Program::default();
        partials.append(staged_in);
        let key = KernelKey::new(Entry::CrossEntropyPartials, plan.variant);
        let bind = self.forward_bind(&common, &chunk);
        self.push(&mut partials, key, bind, n as u64, &format!("rows={n}"))?;
        let grad = match call.grad_into {
            Some(_) => {
                let mut g = self.shard_device_grad(&spec, &plan, &common, &chunk, opts)?;
                g.append(staged_out);
                Some(g)
            }
            None => None,
        };
        Ok(PreparedShardDevice {
            ctx: self.clone(),
            partials,
            grad,
            stats: chunk.stats.clone(),
            rows: n,
            _common: common,
            _chunk: chunk,
        })
    }

    /// The gradient's program: D from the device targets (the mean's), then each row's slice.
    fn shard_device_grad(
        &self,
        spec: &LossSpec,
        plan: &LossPlan,
        common: &Common,
        chunk: &ChunkBuffers,
        opts: &LossOptions,
    ) -> Result<Program> {
        let mut program = Program::default();
        if opts.reduction != Reduction::None {
            self.push_row_dens(
                &mut program,
                plan,
                common,
                std::slice::from_ref(chunk),
                spec,
            )?;
            let dens = [(&chunk.dens as _, &chunk.dens as _, chunk.rows)];
            self.push_reduction(&mut program, &dens, opts.reduction, Some(&common.scale))?;
        }
        let outputs = [(
            chunk.input.classes.len(),
            chunk.grad.as_ref().map_or(0, |g| g.size),
        )];
        let kind = self.with_wide_output(plan.variant, 1, outputs);
        let key = KernelKey::new(Entry::CrossEntropyGradSegments, kind);
        let bind = self.grad_bind(common, chunk, &common.scale);
        self.push(&mut program, key, bind, chunk.rows as u64, "grad")?;
        Ok(program)
    }

    /// The shard's checks, and its problem as a row of all C classes.
    fn shard_device_spec(
        &self,
        call: &DeviceShard,
        opts: &LossOptions,
    ) -> Result<(usize, usize, LossSpec)> {
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
        if n == 0 || cs == 0 || call.first_class + cs > call.classes {
            return Err(XentError::InvalidShape(format!(
                "a device shard holds rows and classes {}..{} of C = {}: at least one of each, within C",
                call.first_class,
                call.first_class + cs,
                call.classes
            )));
        }
        let target_words = match target.dtype() {
            DType::I64 => 2,
            DType::I32 | DType::U32 => 1,
            d => {
                return Err(XentError::InvalidArgument(format!(
                    "a device shard's targets are class indices (i32, u32 or i64), not {d:?}"
                )))
            }
        };
        if let Some(g) = call.grad_into {
            if g.dtype() != DType::F32 || g.shape() != [n, cs] {
                return Err(XentError::InvalidShape(format!(
                    "the shard's gradient is f32 [{n}, {cs}], not {:?} {:?}",
                    g.dtype(),
                    g.shape()
                )));
            }
        }
        let ignore_index = i32::try_from(opts.ignore_index).map_err(|_| {
            XentError::InvalidArgument(format!(
                "ignore_index {} does not fit in 32 bits, which device targets are compared in",
                opts.ignore_index
            ))
        })?;
        let shape = [n, call.classes];
        let problem = check_loss_shapes(
            Loss::CrossEntropy,
            &shape,
            n * call.classes,
            target.shape(),
            false,
            opts,
        )?;
        let spec = LossSpec {
            layout: problem.layout,
            input_shape: shape.to_vec(),
            out_shape: problem.out_shape,
            target_shape: target.shape().to_vec(),
            dtype: Float::F32,
            probs: false,
            target_words,
            unsigned_targets: target.dtype() == DType::U32,
            ignore_index,
            check_targets: false,
            grad_into: None,
            grad_pack: None,
            weight: None,
        };
        Ok((n, cs, spec))
    }
}

impl PreparedShardDevice {
    /// Records the shard's partials into `encoder` (after whatever wrote its logits):
    /// [`PreparedShardDevice::partials`] holds them once it has run.
    pub fn record_partials(&self, encoder: &mut wgpu::CommandEncoder) {
        self.ctx.record(encoder, &self.partials, None);
    }

    /// The partials, `[2, N, 4]` f32 (the layout: this module's header).
    pub fn partials(&self) -> DeviceTensor {
        DeviceTensor::from_parts(self.stats.clone(), vec![2, self.rows, 4], DType::F32)
    }

    /// Where the merged statistics go before [`PreparedShardDevice::record_grad`]: `[N, 4]`
    /// f32, each row's (max, sum_exp, q, lse) over all C classes, over plane 0 of the
    /// partials.
    pub fn merged(&self) -> DeviceTensor {
        DeviceTensor::from_parts(self.stats.clone(), vec![self.rows, 4], DType::F32)
    }

    /// Records the shard's slice of the gradient into `encoder` (upstream gradient 1; of the
    /// summed losses for `none`): from [`PreparedShardDevice::merged`], and the shard's logits
    /// as `record_partials` read them. An error when the shard was made without `grad_into`.
    pub fn record_grad(&self, encoder: &mut wgpu::CommandEncoder) -> Result<()> {
        let program = self.grad.as_ref().ok_or_else(|| {
            XentError::InvalidArgument("the shard was prepared without grad_into".into())
        })?;
        self.ctx.record(encoder, program, None);
        Ok(())
    }
}

/// One segment a row: within the loop-trip and binding limits, never split for threads.
fn one_segment(t: &rows::WalkTuning, n: usize, cs: usize) -> Result<Split> {
    let one = rows::WalkTuning {
        min_workgroups: 1,
        ..*t
    };
    let own = RowLayout {
        outer: n,
        classes: cs,
        inner: 1,
    };
    if rows::split(&own, &one).segments > 1 {
        return Err(XentError::Unsupported(format!(
            "a device shard of {cs} classes is longer than one workgroup walks on this adapter: use more shards"
        )));
    }
    Ok(Split {
        segments: 1,
        len: (cs as u32).next_multiple_of(4),
    })
}
