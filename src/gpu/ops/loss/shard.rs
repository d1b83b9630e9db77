//! One vocabulary shard of a cross_entropy on host tensors: the logits `[N, Cs]` of classes
//! `[c0, c0 + Cs)` of C, uploaded in chunks within one binding and run by the shard kernels
//! (src/gpu/ops/loss/shard_kernels.rs), read back by the host adapter
//! (src/gpu/ops/shard_host.rs). Its rows are cut into the segments of the whole row's plan,
//! so that the shard is whole segments of it; a row larger than one binding is cut into
//! pieces of whole segments.

use super::buffers::ChunkInputs;
use super::plan::LossSpec;
use super::shard_kernels::{host_split, shard_kernels, ShardGrad, ShardRows};
use super::Loss;
use crate::error::{Result, XentError};
use crate::geometry::chunks;
use crate::geometry::rows::Split;
use crate::gpu::ops::loss::PreparedShardDevice;
use crate::gpu::ops::shard_host::PreparedHostShard;
use crate::gpu::runtime::buffers::{upload, Bound};
use crate::gpu::runtime::context::Context;
use crate::gpu::runtime::program::{join, Program};
use crate::layout::RowLayout;
use crate::options::{FloatTensor, LossOptions, Output, Target, Tensor};
use crate::problem::{check_loss, check_loss_shapes, Targets};

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

/// A shard's cross_entropy prepared on one context: [`PreparedHostShard::partials`], then,
/// with every shard's partials merged, [`PreparedHostShard::grad`], its slice `[N, Cs]` of
/// d loss / d logits.
pub type PreparedShard = PreparedHostShard<Output>;

pub(crate) fn build_shard(
    ctx: &Context,
    shard: VocabShard,
    target: Target,
    opts: &LossOptions,
    grad: bool,
) -> Result<PreparedShard> {
    let (n, cs, problem) = check_shard(&shard, &target, opts)?;
    let assemble = Box::new(move |parts: Vec<Vec<f32>>| Output {
        data: join(parts),
        shape: vec![n, cs],
    });
    if n == 0 {
        return Ok(PreparedHostShard::new(
            ctx,
            (0, None),
            (grad, vec![], vec![]),
            assemble,
        ));
    }
    let shape = [n, shard.classes];
    let spec = LossSpec::host(&problem, &FloatTensor::F32(Tensor::new(&[], &shape)), &[n]);
    let split = host_split(ctx, &spec, opts, cs)?;
    let rows = ShardRows {
        rows: n,
        first_class: shard.first_class,
        shard_classes: cs,
        classes: shard.classes,
    };
    let inputs = shard_chunks(ctx, &shard, &problem, &split)?;
    let to = if grad {
        ShardGrad::Own
    } else {
        ShardGrad::None
    };
    let kernels = shard_kernels(ctx, (rows, spec), opts, (split, inputs), to)?;
    let mut partials = Program::default();
    for k in 0..kernels.chunks.len() {
        kernels.push_partials(&mut partials, k)?;
    }
    kernels.copy_partials_out(&mut partials);
    let grad_program = match grad {
        true => {
            let mut program = Program::default();
            kernels.copy_merged_in(&mut program);
            kernels.push_dens(&mut program)?;
            for k in 0..kernels.chunks.len() {
                kernels.push_grad(&mut program, k)?;
            }
            Some(program)
        }
        false => None,
    };
    let grads = kernels
        .chunks
        .iter()
        .filter_map(|b| Some((b.grad.as_ref()?, b.elems)))
        .map(|(g, len)| (g.buffer.clone(), g.offset, len))
        .collect();
    let programs = (Program::default(), partials, grad_program);
    let device = PreparedShardDevice::new(ctx, programs, kernels);
    let reads = (grad, grads, vec![]);
    Ok(PreparedHostShard::new(
        ctx,
        (n, Some(device)),
        reads,
        assemble,
    ))
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
/// `[N, Cs]`) and the options: `(N, Cs, the problem)`.
fn check_shard(
    shard: &VocabShard,
    target: &Target,
    opts: &LossOptions,
) -> Result<(usize, usize, crate::problem::LossProblem)> {
    let &[n, cs] = shard.logits.shape else {
        return Err(XentError::InvalidShape(format!(
            "a shard's logits are [N, Cs], got {:?}",
            shard.logits.shape
        )));
    };
    shard.logits.check_len("shard logits")?;
    check_classes(n, shard.first_class, cs, shard.classes)?;
    let problem = check_shard_target(target, (n, cs, shard.classes), opts)?;
    Ok((n, cs, problem))
}

/// A shard's target checked over all C, for `(N, Cs, C)` whose classes `check_classes`
/// checked: class indices `[N]`, or this shard's probabilities `[N, Cs]`.
pub(crate) fn check_shard_target(
    target: &Target,
    (n, cs, classes): (usize, usize, usize),
    opts: &LossOptions,
) -> Result<crate::problem::LossProblem> {
    let (shape, len) = ([n, classes], n * classes);
    let Target::Probs(p) = target else {
        return check_loss(Loss::CrossEntropy, &shape, len, target, opts);
    };
    if p.shape != [n, cs] {
        return Err(XentError::InvalidShape(format!(
            "a shard's probabilities are its own [{n}, {cs}] slice, got {:?}",
            p.shape
        )));
    }
    p.check_len("target")?;
    let mut problem = check_loss_shapes(Loss::CrossEntropy, &shape, len, &shape, true, opts)?;
    problem.targets = Targets::Probs(p.data.to_vec());
    Ok(problem)
}
