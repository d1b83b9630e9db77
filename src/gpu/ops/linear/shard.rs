//! One vocabulary shard of a `linear_cross_entropy` on host tensors: the rows' hidden states
//! `[N, D]` and a slice `[Cs, D]` of the classifier (and of its bias), classes
//! `first_class ..` of C. From it come the shard's partials; from every shard's merged, its
//! slices of the weight's and bias's gradients and its share of the input's (`G · W_s`,
//! which the caller sums over the shards). Two forms:
//! - class targets: the fused device shard (src/gpu/ops/linear/shard_device.rs) over our copies
//!   of the tensors. The logits are held `DEFAULT_LINEAR_BUDGET` bytes at a time, never whole;
//! - probability targets (this shard's slice `[N, Cs]` of them), and empty products: the
//!   logits `[N, Cs]` whole, then G, then G's products with the host's transposes of X and
//!   W_s (src/gpu/ops/linear/shard_whole.rs). The shard holds `N × Cs` floats: C / R classes
//!   each over R shards, never the full C.

use super::chunks::At;
use super::shard_device::{DeviceLinearShard, PreparedLinearShardDevice};
use crate::error::{Result, XentError};
use crate::gpu::api::Grad;
use crate::gpu::ops::loss::{check_classes, Loss};
use crate::gpu::runtime::context::Context;
use crate::gpu::runtime::device_tensor::DeviceTensor;
use crate::gpu::runtime::program::Program;
use crate::gpu::runtime::readback::Staging;
use crate::linear::LinearProblem;
use crate::options::{DType, LossOptions, Output, Target, Tensor};
use crate::problem::{check_loss, Targets, IGNORED};
use crate::shard::{Partial, ShardStep};
use std::sync::atomic::{AtomicBool, Ordering};

/// A shard of a `linear_cross_entropy`, in f32.
#[derive(Clone, Copy, Debug)]
pub struct LinearShard<'a> {
    /// The hidden states `[N, D]`, the same on every shard.
    pub input: Tensor<'a, f32>,
    /// This shard's rows `[Cs, D]` of the classifier weight.
    pub weight: Tensor<'a, f32>,
    /// This shard's slice `[Cs]` of the bias.
    pub bias: Option<Tensor<'a, f32>>,
    /// The first of its classes: it holds `first_class .. first_class + Cs` of C.
    pub first_class: usize,
    /// C, the classes of all shards together.
    pub classes: usize,
    /// The targets over all C: class indices `[N]`, or this shard's probabilities `[N, Cs]`.
    pub target: Target<'a>,
    /// PyTorch's loss options (`weight`: all C classes).
    pub options: LossOptions<'a>,
    /// `Grad::Returned`: [`PreparedLinearShard::grad`] may follow the partials; `Grad::None`.
    pub grad: Grad<'a>,
    /// The most bytes of logits held at once by the fused form (class targets)
    /// ([`crate::DEFAULT_LINEAR_BUDGET`], for one).
    pub budget: usize,
}

/// A shard's gradients: its share of d loss / d input (summed over the shards, it is the
/// input's gradient), and its own slices of the weight's and the bias's.
#[derive(Clone, Debug)]
pub struct LinearShardGrads {
    /// Its share `[N, D]` of d loss / d input: summed over the shards, the input's gradient.
    pub input: Output,
    /// Its slice `[Cs, D]` of the weight's gradient.
    pub weight: Output,
    /// Its slice `[Cs]` of the bias's gradient, when there is a bias.
    pub bias: Option<Output>,
}

/// A [`LinearShard`] prepared on one context: [`PreparedLinearShard::partials`], then, with
/// every shard's merged, [`PreparedLinearShard::grad`].
pub struct PreparedLinearShard {
    pub(super) ctx: Context,
    form: Form,
    pub(super) dims: (usize, usize, usize),
    /// Held by each run (src/gpu/runtime/run_lock.rs).
    lock: crate::gpu::runtime::run_lock::RunLock,
}

use super::shard_whole::Whole;
use crate::gpu::ops::linear::host_grads;
use crate::gpu::ops::linear::shard_device::build_linear_shard_device;
use crate::gpu::ops::linear::shard_whole::whole_shard;
use crate::gpu::ops::loss::shard_kernels::walks_shard;
use crate::gpu::runtime::program::run_program;
use crate::gpu::runtime::readback::staging_for;
use crate::gpu::runtime::run_lock::run_locked;
use crate::gpu::runtime::run_lock::run_locked_async;

enum Form {
    Fused(Box<Fused>),
    Whole(Box<Whole>),
}

/// Class targets: the fused device shard and its tensors.
struct Fused {
    shard: PreparedLinearShardDevice,
    /// Our copies of the inputs, which its programs read.
    _inputs: Vec<DeviceTensor>,
    /// What the gradients' run reads, each with its length: dX's share, dW_s and db_s
    /// (mapped where they lie on adapters that allow it).
    reads: Vec<(wgpu::Buffer, Staging, usize)>,
    /// Whether the partials have run (the gradients read what they left).
    ran: AtomicBool,
}

pub(crate) fn build_linear_shard(
    ctx: &Context,
    shard: LinearShard,
    target: Target,
    opts: &LossOptions,
    grad: bool,
) -> Result<PreparedLinearShard> {
    let (n, d, cs) = match (shard.input.shape, shard.weight.shape) {
        (&[n, d], &[cs, dw]) if d == dw => (n, d, cs),
        (x, w) => {
            return Err(XentError::InvalidShape(format!(
                "a linear shard's input is [N, D] and its weight [Cs, D], got {x:?} and {w:?}"
            )))
        }
    };
    shard.input.check_len("input")?;
    shard.weight.check_len("linear_weight")?;
    if let Some(b) = shard.bias {
        if b.shape != [cs] {
            return Err(XentError::InvalidShape(format!(
                "a linear shard's bias is [{cs}], got {:?}",
                b.shape
            )));
        }
        b.check_len("linear_bias")?;
    }
    check_classes(n, shard.first_class, cs, shard.classes)?;
    let classes = matches!(target, Target::I64(_) | Target::I32(_) | Target::U32(_));
    let form = match classes && fuses_linear_shard(ctx, n, d, cs) {
        true => Form::Fused(Box::new(fused_shard(ctx, shard, target, opts, grad)?)),
        false => Form::Whole(Box::new(whole_shard(ctx, shard, target, opts, grad)?)),
    };
    Ok(PreparedLinearShard {
        ctx: ctx.clone(),
        form,
        dims: (n, d, cs),
        lock: Default::default(),
    })
}

/// Whether the fused form takes a shard of `n` rows, `d` features and `cs` classes:
/// something to compute, the input and the weight slice each within one binding (as
/// device tensors), and a row of the shard walked by one workgroup. Otherwise the
/// logits are made whole, which the `cross_entropy` shard splits and chunks as it needs.
fn fuses_linear_shard(ctx: &Context, n: usize, d: usize, cs: usize) -> bool {
    let binds = |elems: usize| {
        (elems.saturating_mul(4) as u64).saturating_add(32) <= ctx.max_binding_bytes()
    };
    n > 0 && d > 0 && cs > 0 && binds(n * d) && binds(cs * d) && walks_shard(ctx, cs)
}

/// The fused device shard over copies of the tensors, its class targets checked over all
/// C here (the device shard does not check them) and the ignored ones marked.
fn fused_shard(
    ctx: &Context,
    shard: LinearShard,
    target: Target,
    opts: &LossOptions,
    grad: bool,
) -> Result<Fused> {
    let (&[n, d], cs) = (shard.input.shape, shard.weight.shape[0]) else {
        unreachable!("checked by build_linear_shard")
    };
    let shape = [n, shard.classes];
    // N·C fits: build_linear_shard checked the classes.
    let problem = check_loss(Loss::CrossEntropy, &shape, n * shard.classes, &target, opts)?;
    let Targets::Classes(classes) = &problem.targets else {
        unreachable!("class targets")
    };
    let opts = LossOptions {
        ignore_index: IGNORED as i64,
        ..*opts
    };
    let up = |t: &Tensor<f32>| DeviceTensor::from_host(ctx, t.data, t.shape, DType::F32);
    let mut inputs = vec![
        up(&shard.input)?,
        up(&shard.weight)?,
        DeviceTensor::from_host(ctx, classes, &[n], DType::I32)?,
    ];
    if let Some(b) = &shard.bias {
        inputs.push(up(b)?);
    }
    let p = LinearProblem::new(shard.input.shape, shard.weight.shape, None)?;
    let grads = match grad {
        true => Some(host_grads(ctx, &p, shard.bias.is_some())?),
        false => None,
    };
    let tensor = |(buffer, _): &At, shape: &[usize]| {
        DeviceTensor::from_parts(buffer.clone(), shape.to_vec(), DType::F32)
    };
    let into = grads.as_ref().map(|(dx, dw, db)| {
        (
            tensor(dx, &[n, d]),
            tensor(dw, &[cs, d]),
            db.as_ref().map(|b| tensor(b, &[cs])),
        )
    });
    let into: Vec<&DeviceTensor> = into
        .iter()
        .flat_map(|(dx, dw, db)| [Some(dx), Some(dw), db.as_ref()])
        .flatten()
        .collect();
    let call = DeviceLinearShard {
        input: &inputs[0],
        weight: &inputs[1],
        bias: inputs.get(3),
        target: &inputs[2],
        first_class: shard.first_class,
        classes: shard.classes,
        grad: match into.is_empty() {
            true => Grad::None,
            false => Grad::Into(&into),
        },
        budget: shard.budget,
        options: opts,
    };
    let reads = match &grads {
        Some((dx, dw, db)) => [
            Some((dx, n * d)),
            Some((dw, cs * d)),
            db.as_ref().map(|b| (b, cs)),
        ]
        .into_iter()
        .flatten()
        .map(|((b, _), len)| (b.clone(), staging_for(ctx, b, 0, (len * 4) as u64), len))
        .collect(),
        None => vec![],
    };
    Ok(Fused {
        shard: build_linear_shard_device(ctx, call)?,
        _inputs: inputs,
        reads,
        ran: false.into(),
    })
}

impl PreparedLinearShard {
    /// Each row's [`Partial`] over this shard's classes.
    pub fn partials(&self) -> Result<Vec<Partial>> {
        run_locked(&self.ctx, &self.lock, self.partials_held())
    }

    /// The async form of [`PreparedLinearShard::partials`].
    pub async fn partials_async(&self) -> Result<Vec<Partial>> {
        run_locked_async(&self.ctx, &self.lock, self.partials_held()).await
    }

    /// The shard's gradients (upstream gradient 1; of the summed losses for `none`) from
    /// every shard's partials merged in shard order.
    pub fn grad(&self, merged: &[Partial]) -> Result<LinearShardGrads> {
        run_locked(&self.ctx, &self.lock, self.grad_held(merged))
    }

    /// The async form of [`PreparedLinearShard::grad`].
    pub async fn grad_async(&self, merged: &[Partial]) -> Result<LinearShardGrads> {
        run_locked_async(&self.ctx, &self.lock, self.grad_held(merged)).await
    }

    /// `partials` by a caller that holds the run lock, inside its error scopes.
    async fn partials_held(&self) -> Result<Vec<Partial>> {
        match &self.form {
            Form::Fused(f) => self.fused_partials(f).await,
            Form::Whole(w) => w.loss.partials_held().await,
        }
    }

    /// `grad` by a caller that holds the run lock, inside its error scopes.
    async fn grad_held(&self, merged: &[Partial]) -> Result<LinearShardGrads> {
        match &self.form {
            Form::Fused(f) => self.fused_grads(f, merged).await,
            Form::Whole(w) => self.whole_grads(w, merged).await,
        }
    }

    async fn fused_partials(&self, f: &Fused) -> Result<Vec<Partial>> {
        let mut encoder = self
            .ctx
            .device()
            .create_command_encoder(&Default::default());
        f.shard.record_partials(&mut encoder);
        self.ctx.queue().submit([encoder.finish()]);
        let v = f.shard.partials().read_f32_async(&self.ctx).await?;
        f.ran.store(true, Ordering::Relaxed);
        let n = self.dims.0;
        let plane = |r: usize, k: usize| -> [f32; 4] {
            let at = (k * n + r) * 4;
            [v[at], v[at + 1], v[at + 2], v[at + 3]]
        };
        Ok((0..n)
            .map(|r| Partial::from_planes(plane(r, 0), plane(r, 1)))
            .collect())
    }

    async fn fused_grads(&self, f: &Fused, merged: &[Partial]) -> Result<LinearShardGrads> {
        let (n, d, cs) = self.dims;
        if f.reads.is_empty() {
            return Err(XentError::InvalidArgument(
                "the linear shard was prepared without its gradients".into(),
            ));
        }
        if merged.len() != n {
            return Err(XentError::InvalidShape(format!(
                "{} merged partials for a shard of {n} rows",
                merged.len()
            )));
        }
        if !f.ran.load(Ordering::Relaxed) {
            self.fused_partials(f).await?;
        }
        let stats: Vec<f32> = merged.iter().flat_map(|p| p.stats()).collect();
        let into = f.shard.merged();
        let reads: Vec<_> = f.reads.iter().map(|(b, s, _)| (b, 0, s)).collect();
        let nothing = Program::default();
        let queue = self.ctx.queue();
        queue.write_buffer(into.buffer(), into.offset(), bytemuck::cast_slice(&stats));
        let mut encoder = self
            .ctx
            .device()
            .create_command_encoder(&Default::default());
        f.shard.record_grad(&mut encoder)?;
        queue.submit([encoder.finish()]);
        let (words, _) = run_program(&self.ctx, &nothing, &reads, None).await?;
        let mut outputs = words
            .into_iter()
            .zip(&f.reads)
            .map(|(mut data, (_, _, len))| {
                data.truncate(*len);
                data
            });
        let mut next = |shape: Vec<usize>| Output {
            data: outputs.next().unwrap_or_default(),
            shape,
        };
        Ok(LinearShardGrads {
            input: next(vec![n, d]),
            weight: next(vec![cs, d]),
            bias: (f.reads.len() == 3).then(|| next(vec![cs])),
        })
    }
}

impl ShardStep for PreparedLinearShard {
    type Grad = LinearShardGrads;

    async fn partials(&self) -> Result<Vec<Partial>> {
        self.partials_async().await
    }

    async fn grad(&self, merged: &[Partial]) -> Result<LinearShardGrads> {
        self.grad_async(merged).await
    }
}
