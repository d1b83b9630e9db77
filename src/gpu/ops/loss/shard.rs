//! One vocabulary shard of a cross_entropy on one context: the logits `[N, Cs]` of classes
//! `[c0, c0 + Cs)` of C. Its per-row partials, and its slice of the gradient from the merged
//! partials of every shard (the protocol of [`crate::shard`], whose merge runs on the
//! host or in any all-gather between the two).
//!
//! The shard's rows are cut into its own split-row segments: `cross_entropy_partials` writes
//! each segment's (M, S, Q, A) and (r, x_target, found) (shaders/loss.wgsl), read back and
//! merged per row in segment order into one [`Partial`]. For the gradient, the merged
//! (M, S, Q, lse) of each row is written at its first slot and `cross_entropy_grad_segments`
//! (shaders/grad.wgsl) writes the shard's slice, D (the mean's denominator) in `scale`.

use super::buffers::{row_chunks, ChunkBuffers, ChunkInputs, Common};
use super::plan::{LossPlan, LossSpec};
use super::{Grad, Loss, Request};
use crate::error::{Result, XentError};
use crate::geometry::chunks;
use crate::geometry::rows::Split;
use crate::gpu::kernels::{Entry, KernelKey};
use crate::gpu::ops::loss::buffers::{chunk_buffers, forward_bind, grad_bind, loss_common};
use crate::gpu::runtime::buffers::upload;
use crate::gpu::runtime::buffers::Bound;
use crate::gpu::runtime::context::Context;
use crate::gpu::runtime::program::Program;
use crate::gpu::runtime::program::{push, run_program};
use crate::gpu::runtime::readback::staging_for;
use crate::gpu::runtime::readback::Staging;
use crate::gpu::runtime::run_lock::run_locked;
use crate::gpu::runtime::run_lock::run_locked_async;
use crate::layout::RowLayout;
use crate::options::{FloatTensor, LossOptions, Output, Reduction, Target, Tensor};
use crate::problem::{check_loss, check_loss_shapes, Targets};
use crate::shard::{Partial, ShardStep};

/// One shard's logits: `[N, Cs]`, classes `first_class .. first_class + Cs` of `classes`.
#[derive(Clone, Copy, Debug)]
pub struct VocabShard<'a> {
    /// This shard's logits `[N, Cs]`.
    pub logits: Tensor<'a, f32>,
    /// The first of its classes: it holds `first_class .. first_class + Cs` of C.
    pub first_class: usize,
    /// C, the classes of all shards together.
    pub classes: usize,
    /// The targets over all C: class indices `[N]`, or this shard's probabilities `[N, Cs]`.
    pub target: Target<'a>,
    /// PyTorch's loss options (`weight`: all C classes).
    pub options: LossOptions<'a>,
    /// `Grad::Returned`: [`PreparedShard::grad`] may follow the partials; `Grad::None`.
    pub grad: crate::gpu::api::Grad<'a>,
}

/// A shard's cross_entropy prepared on one context: [`PreparedShard::partials`], then, with
/// every shard's partials merged, [`PreparedShard::grad`].
pub struct PreparedShard {
    ctx: Context,
    common: Common,
    chunks: Vec<ChunkBuffers>,
    partials: Program,
    grad: Option<Program>,
    /// Both stats planes of each chunk, and each chunk's gradient.
    stats_staging: Vec<Staging>,
    grad_staging: Vec<Staging>,
    /// Segments of each row (the stats' row stride, in vec4s).
    segments: usize,
    rows: usize,
    shard_classes: usize,
    /// D: the mean's denominator from the targets (1 for `sum` and `none`).
    den: f64,
    /// Held by each run (src/gpu/runtime/run_lock.rs).
    lock: crate::gpu::runtime::run_lock::RunLock,
}

pub(crate) fn build_shard(
    ctx: &Context,
    shard: VocabShard,
    target: Target,
    opts: &LossOptions,
    grad: bool,
) -> Result<PreparedShard> {
    let (n, cs, problem, den) = check_shard(&shard, &target, opts)?;
    let shape = [n, shard.classes];
    let spec = LossSpec::host(&problem, &FloatTensor::F32(Tensor::new(&[], &shape)), &[n]);
    let req = Request {
        grad: if grad { Grad::OutOfPlace } else { Grad::None },
        ..Request::forward(Loss::CrossEntropy)
    };
    // The segment length of the whole row's plan; the shard is whole segments of it.
    let tuning = ctx.walk_tuning();
    let any = ctx.variant(spec.dtype, []);
    let len = LossPlan::new(&spec, opts, req, any, &tuning)?
        .walk
        .split
        .len
        .max(1);
    let split = Split {
        segments: (cs as u32).div_ceil(len),
        len,
    };
    let inputs = shard_chunks(ctx, &shard, &problem, &split)?;
    let variant = ctx.variant(spec.dtype, inputs.iter().map(|c| c.logits.size));
    let plan =
        LossPlan::new(&spec, opts, req, variant, &tuning)?.split_into(split, tuning.workgroup_size);
    let common = loss_common(ctx, &spec, opts)?;
    let chunks = chunk_buffers(ctx, (&spec, opts, req), &plan, inputs)?;
    let mut partials = Program::default();
    let key = KernelKey::new(Entry::CrossEntropyPartials, plan.variant);
    for b in &chunks {
        let groups = b.rows as u64 * b.segments as u64;
        let shape = format!("rows={} segments={}", b.rows, b.segments);
        push(
            ctx,
            &mut partials,
            key,
            forward_bind(ctx, &common, b),
            groups,
            &shape,
        )?;
    }
    let grad = match grad {
        true => Some(shard_grad_program(ctx, &spec, &plan, &common, &chunks)?),
        false => None,
    };
    Ok(PreparedShard {
        stats_staging: row_chunks(&chunks)
            .map(|b| staging_for(ctx, &b.stats, 0, b.stats.size()))
            .collect(),
        grad_staging: chunks
            .iter()
            .filter_map(|b| Some((b.grad.as_ref()?, b.elems as u64 * 4)))
            .map(|(g, bytes)| staging_for(ctx, &g.buffer, g.offset, bytes))
            .collect(),
        ctx: ctx.clone(),
        common,
        chunks,
        partials,
        grad,
        segments: split.segments as usize,
        rows: n,
        shard_classes: cs,
        den,
        lock: Default::default(),
    })
}

fn shard_grad_program(
    ctx: &Context,
    spec: &LossSpec,
    plan: &LossPlan,
    common: &Common,
    chunks: &[ChunkBuffers],
) -> Result<Program> {
    let outputs = chunks
        .iter()
        .map(|b| (b.input.classes.len(), b.grad.as_ref().map_or(0, |g| g.size)));
    let kind = ctx.with_wide_output(plan.variant, spec.layout.inner, outputs);
    let key = KernelKey::new(Entry::CrossEntropyGradSegments, kind);
    let mut program = Program::default();
    for b in chunks {
        let groups = b.rows as u64 * b.segments as u64;
        let shape = format!("rows={} segments={}", b.rows, b.segments);
        let bind = grad_bind(ctx, common, b, &common.scale);
        push(ctx, &mut program, key, bind, groups, &shape)?;
    }
    Ok(program)
}

/// The shard as chunks within one binding: runs of whole rows, or pieces of whole
/// segments of a row larger than one binding (`geometry::chunks`).
fn shard_chunks(
    ctx: &Context,
    shard: &VocabShard,
    problem: &crate::problem::LossProblem,
    split: &Split,
) -> Result<Vec<ChunkInputs>> {
    let (n, cs) = (shard.logits.shape[0], shard.logits.shape[1]);
    let layout = RowLayout {
        outer: n,
        classes: cs,
        inner: 1,
    };
    let c0 = shard.first_class;
    chunks::shard_plan(&layout, split, ctx.max_binding_bytes())?
        .iter()
        .map(|chunk| {
            let (elems, rows) = (chunk.elems(&layout, split), chunk.rows(&layout));
            let classes = chunk.classes(&layout, split);
            let (targets, probs) = match &problem.targets {
                Targets::Classes(t) => (upload(ctx, "targets", &t[rows.clone()])?, None),
                Targets::Probs(p) => (
                    upload::<i32>(ctx, "targets", &[])?,
                    Some(Bound::whole(upload(ctx, "probs", &p[elems.clone()])?)),
                ),
            };
            let logits = upload(ctx, "shard logits", &shard.logits.data[elems.clone()])?;
            Ok(ChunkInputs {
                logits: Bound::whole(logits),
                targets: Bound::whole(targets),
                probs,
                rows,
                elems,
                seg_first: chunk.seg_first,
                classes: c0 + classes.start..c0 + classes.end,
            })
        })
        .collect()
}

/// Checks a shard of `n` rows and classes `first_class .. first_class + cs` of `classes`:
/// at least one class, within C, and C within the i32 the device compares class indices
/// in. Returns the elements of the problem's `[N, C]`.
pub(crate) fn check_classes(
    n: usize,
    first_class: usize,
    cs: usize,
    classes: usize,
) -> Result<usize> {
    let end = first_class.checked_add(cs);
    if cs == 0 || end.is_none_or(|end| end > classes) {
        return Err(XentError::InvalidShape(format!(
            "a shard holds classes {first_class}..{first_class} + {cs} of C = {classes}: it needs at least one, within C"
        )));
    }
    if classes > i32::MAX as usize {
        return Err(XentError::Unsupported(format!(
            "a shard's C = {classes} is past {}, the largest class index the device compares",
            i32::MAX
        )));
    }
    n.checked_mul(classes).ok_or_else(|| {
        XentError::InvalidShape(format!(
            "a problem of [{n}, {classes}] has more elements than usize holds"
        ))
    })
}

/// Checks a shard, its target (class targets `[N]` over all C, or this shard's probabilities
/// `[N, Cs]`) and the options: `(N, Cs, the problem, D)`.
fn check_shard(
    shard: &VocabShard,
    target: &Target,
    opts: &LossOptions,
) -> Result<(usize, usize, crate::problem::LossProblem, f64)> {
    let &[n, cs] = shard.logits.shape else {
        return Err(XentError::InvalidShape(format!(
            "a shard's logits are [N, Cs], got {:?}",
            shard.logits.shape
        )));
    };
    shard.logits.check_len("shard logits")?;
    let len = check_classes(n, shard.first_class, cs, shard.classes)?;
    let shape = [n, shard.classes];
    let mut problem = match target {
        Target::Probs(p) => {
            if p.shape != [n, cs] {
                return Err(XentError::InvalidShape(format!(
                    "a shard's probabilities are its own [{n}, {cs}] slice, got {:?}",
                    p.shape
                )));
            }
            p.check_len("target")?;
            check_loss_shapes(Loss::CrossEntropy, &shape, len, &shape, true, opts)?
        }
        t => check_loss(Loss::CrossEntropy, &shape, len, t, opts)?,
    };
    if let Target::Probs(p) = target {
        problem.targets = Targets::Probs(p.data.to_vec());
    }
    // PyTorch's mean divides by Σ w_y over the rows not ignored (N for probabilities).
    let w = |y: i32| opts.weight.map_or(1.0, |w| w[y as usize] as f64);
    let den = match (&problem.targets, opts.reduction) {
        (_, Reduction::Sum | Reduction::None) => 1.0,
        (Targets::Probs(_), Reduction::Mean) => n as f64,
        (Targets::Classes(t), Reduction::Mean) => {
            t.iter().filter(|&&y| y >= 0).map(|&y| w(y)).sum()
        }
    };
    Ok((n, cs, problem, den))
}

impl PreparedShard {
    /// Runs the shard's forward and returns each row's [`Partial`] over its classes.
    pub fn partials(&self) -> Result<Vec<Partial>> {
        run_locked(&self.ctx, &self.lock, self.partials_held())
    }

    /// The async form of [`PreparedShard::partials`].
    pub async fn partials_async(&self) -> Result<Vec<Partial>> {
        run_locked_async(&self.ctx, &self.lock, self.partials_held()).await
    }

    /// The shard's slice `[N, Cs]` of d loss / d logits (upstream gradient 1; of the summed
    /// losses for `none`), from every shard's partials merged in shard order.
    pub fn grad(&self, merged: &[Partial]) -> Result<Output> {
        run_locked(&self.ctx, &self.lock, self.grad_held(merged))
    }

    /// The async form of [`PreparedShard::grad`].
    pub async fn grad_async(&self, merged: &[Partial]) -> Result<Output> {
        run_locked_async(&self.ctx, &self.lock, self.grad_held(merged)).await
    }

    /// `partials` by a caller that holds the run lock.
    pub(crate) async fn partials_held(&self) -> Result<Vec<Partial>> {
        let reads: Vec<_> = row_chunks(&self.chunks)
            .zip(&self.stats_staging)
            .map(|(b, s)| (&b.stats, 0, s))
            .collect();
        let (planes, _) = run_program(&self.ctx, &self.partials, &reads, None).await?;
        let mut out = Vec::with_capacity(self.rows);
        for (b, words) in row_chunks(&self.chunks).zip(&planes) {
            let k = self.segments;
            let aux = b.rows * k * 4;
            for r in 0..b.rows {
                let row = (0..k).map(|j| {
                    let (p, e) = (4 * (r * k + j), aux + 4 * (r * k + j));
                    Partial::from_planes(quad(&words[p..]), quad(&words[e..]))
                });
                out.push(row.fold(Partial::EMPTY, Partial::merge));
            }
        }
        Ok(out)
    }

    /// `grad` by a caller that holds the run lock.
    pub(crate) async fn grad_held(&self, merged: &[Partial]) -> Result<Output> {
        let Some(program) = &self.grad else {
            return Err(XentError::InvalidArgument(
                "the shard was prepared without its gradient".into(),
            ));
        };
        if merged.len() != self.rows {
            return Err(XentError::InvalidShape(format!(
                "{} merged rows for a shard of {} rows",
                merged.len(),
                self.rows
            )));
        }
        let reads: Vec<_> = self
            .chunks
            .iter()
            .filter_map(|b| b.grad.as_ref())
            .zip(&self.grad_staging)
            .map(|(g, s)| (&g.buffer, g.offset, s))
            .collect();
        self.write_merged(merged);
        let (parts, _) = run_program(&self.ctx, program, &reads, None).await?;
        let mut data = crate::gpu::runtime::program::join(parts);
        data.truncate(self.rows * self.shard_classes);
        Ok(Output {
            data,
            shape: vec![self.rows, self.shard_classes],
        })
    }
}

impl PreparedShard {
    /// D and the merged statistics into the buffers the gradient kernels read.
    fn write_merged(&self, merged: &[Partial]) {
        let queue = &self.ctx.shared.queue;
        queue.write_buffer(
            &self.common.scale,
            0,
            bytemuck::bytes_of(&(self.den as f32)),
        );
        let mut at = 0;
        for b in row_chunks(&self.chunks) {
            // (M, S, Q, lse) at each row's first slot; the rest of the plane is not read.
            let mut stats = vec![0f32; b.rows * self.segments * 4];
            for (r, p) in merged[at..at + b.rows].iter().enumerate() {
                stats[4 * r * self.segments..][..4].copy_from_slice(&p.stats());
            }
            queue.write_buffer(&b.stats, 0, bytemuck::cast_slice(&stats));
            at += b.rows;
        }
    }
}

/// The first four values of `v`.
fn quad(v: &[f32]) -> [f32; 4] {
    [v[0], v[1], v[2], v[3]]
}

impl ShardStep for PreparedShard {
    type Grad = Output;

    async fn partials(&self) -> Result<Vec<Partial>> {
        self.partials_async().await
    }

    async fn grad(&self, merged: &[Partial]) -> Result<Output> {
        self.grad_async(merged).await
    }
}
