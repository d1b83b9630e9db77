//! Launcher for `shaders/reduce.wgsl`: per-row (loss, den) pairs down to the scalar loss, and
//! plain sums written where a later kernel reads them.

use crate::error::Result;
use crate::gpu::kernels::uniform;
use crate::gpu::kernels::{reduce_block_len, Entry, Family, KernelKey};
use crate::gpu::runtime::buffers::Bindable;
use crate::gpu::runtime::buffers::{bind, output, uniform};
use crate::gpu::runtime::context::Context;
use crate::gpu::runtime::program::push;
use crate::gpu::runtime::program::Program;
use crate::options::Float;
use crate::options::{LossOptions, Reduction};

uniform! {
    /// The uniform of shaders/reduce.wgsl: what each field means is documented there.
    pub(crate) struct ReduceParams in Reduce {
        n: u32,
        out_base: u32,
        mode: u32,
        den_given: u32,
    }
}

/// How a reduction finishes (reduce.wgsl's `mode`): the sum, the mean, or the mean of a
/// label-smoothed loss, which is NaN wherever D is 0 (`cpu::loss::mean` says why).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Finish {
    Mean = 1,
    Sum = 2,
    SmoothedMean = 3,
}

impl Finish {
    /// The finish of a loss under `opts`.
    pub fn of(opts: &LossOptions) -> Self {
        match opts.reduction {
            Reduction::Mean if opts.label_smoothing > 0.0 => Finish::SmoothedMean,
            r => r.into(),
        }
    }
}

impl From<Reduction> for Finish {
    fn from(reduction: Reduction) -> Self {
        match reduction {
            Reduction::Mean => Finish::Mean,
            _ => Finish::Sum,
        }
    }
}

fn mode(finish: Finish) -> u32 {
    finish as u32
}

/// Values a lane adds at most in the one-dispatch reduction: batches of up to this many
/// times the workgroup size (8,192 values with lavapipe's workgroups of 8, 262,144 with a
/// GPU's 256) take one dispatch, where each level of blocks would cost one of its own.
pub(crate) const SINGLE_PASS_TRIPS: usize = 1024;

/// The reduced loss on the device: `value[0]` is the loss, `den[0]` the denominator D
/// the gradient divides by (1 for `sum`).
pub(crate) struct Reduced {
    pub value: wgpu::Buffer,
    pub den: wgpu::Buffer,
}

/// One input of a reduction: `(values, dens, n)`.
pub(crate) type Part<'a> = (&'a dyn Bindable, &'a dyn Bindable, usize);

/// Appends the reduction of `parts` in their order, finished as `finish` says. D goes to
/// `den_into[0]` when given (the gradient's scale buffer), else to a buffer of its own.
pub(crate) fn push_reduction(
    ctx: &Context,
    program: &mut Program,
    parts: &[Part],
    finish: Finish,
    den_into: Option<&wgpu::Buffer>,
) -> Result<Reduced> {
    let value = output(ctx, "loss", 1)?;
    let den_out = match den_into {
        Some(b) => b.clone(),
        None => output(ctx, "loss denominator", 1)?,
    };
    let mode = mode(finish);
    match parts {
        [(values, dens, n)] if single_pass(ctx, *n) => {
            let out = (&value, &den_out);
            push_single(ctx, program, (*values, *dens, *n), mode, false, out)?;
        }
        _ => {
            let (sum, den) = push_blocks(ctx, program, parts)?;
            push_finalize(ctx, program, (&sum, &den), mode, (&value, &den_out), 0)?;
        }
    }
    Ok(Reduced {
        value,
        den: den_out,
    })
}

/// Whether `n` values are reduced by one workgroup in one dispatch (`reduce_single`):
/// at most [`SINGLE_PASS_TRIPS`] values a lane.
pub(crate) fn single_pass(ctx: &Context, n: usize) -> bool {
    n <= SINGLE_PASS_TRIPS * ctx.workgroup_size() as usize
}

/// Appends the reduction of `n` values whose mean divides by `den[0]`, a D summed before
/// (the fused backward's): one dispatch. Needs `single_pass` of `n`.
pub(crate) fn push_reduction_over(
    ctx: &Context,
    program: &mut Program,
    values: &dyn Bindable,
    n: usize,
    finish: Finish,
    den: &wgpu::Buffer,
) -> Result<Reduced> {
    let value = output(ctx, "loss", 1)?;
    let den_out = output(ctx, "loss denominator", 1)?;
    let out = (&value, &den_out);
    push_single(ctx, program, (values, den, n), mode(finish), true, out)?;
    Ok(Reduced {
        value,
        den: den_out,
    })
}

fn push_single(
    ctx: &Context,
    program: &mut Program,
    (values, dens, n): Part,
    mode: u32,
    den_given: bool,
    out: (&wgpu::Buffer, &wgpu::Buffer),
) -> Result<()> {
    let params = ReduceParams {
        n: n as u32,
        out_base: 0,
        mode,
        den_given: den_given as u32,
    };
    let shape = format!("n={n}");
    push_reduce(
        ctx,
        program,
        Entry::ReduceSingle,
        &params,
        (values, dens),
        (out.0, out.1),
        (1, &shape),
    )
}

/// Appends `into[index] = Σ values[0..n]`, summed in the same fixed order as a loss
/// (e.g. W = Σ w of device weights, into the gradient's scale buffer).
pub(crate) fn push_sum_into(
    ctx: &Context,
    program: &mut Program,
    values: &dyn Bindable,
    n: usize,
    into: &wgpu::Buffer,
    index: u32,
) -> Result<()> {
    let (sum, den) = push_blocks(ctx, program, &[(values, values, n)])?;
    // finalize writes a den too; it goes to a scratch buffer.
    let scratch = output(ctx, "unused den", index as usize + 1)?;
    push_finalize(
        ctx,
        program,
        (&sum, &den),
        mode(Finish::Sum),
        (into, &scratch),
        index,
    )
}

/// Block sums of every part, then of the partial sums, until one pair is left.
fn push_blocks(
    ctx: &Context,
    program: &mut Program,
    parts: &[Part],
) -> Result<(wgpu::Buffer, wgpu::Buffer)> {
    let block = reduce_block_len(ctx.workgroup_size());
    let counts: Vec<u64> = parts.iter().map(|p| (p.2 as u64).div_ceil(block)).collect();
    let total: u64 = counts.iter().sum();
    let mut sum = output(ctx, "reduce partial sums", total as usize)?;
    let mut den = output(ctx, "reduce partial dens", total as usize)?;
    let mut base = 0u64;
    for (part, &groups) in parts.iter().zip(&counts) {
        push_block(
            ctx,
            program,
            (part.0, part.1),
            part.2 as u64,
            base,
            (&sum, &den),
        )?;
        base += groups;
    }
    let mut n = total;
    while n > 1 {
        let groups = n.div_ceil(block);
        let next_sum = output(ctx, "reduce partial sums", groups as usize)?;
        let next_den = output(ctx, "reduce partial dens", groups as usize)?;
        push_block(ctx, program, (&sum, &den), n, 0, (&next_sum, &next_den))?;
        (sum, den, n) = (next_sum, next_den, groups);
    }
    Ok((sum, den))
}

/// Appends finalize: the last pair `input` to `out.0[index]`, `out.1[index]`.
fn push_finalize(
    ctx: &Context,
    program: &mut Program,
    input: (&wgpu::Buffer, &wgpu::Buffer),
    mode: u32,
    out: (&wgpu::Buffer, &wgpu::Buffer),
    index: u32,
) -> Result<()> {
    let params = ReduceParams {
        n: 1,
        out_base: index,
        mode,
        den_given: 0,
    };
    let entry = Entry::ReduceFinalize;
    push_reduce(
        ctx,
        program,
        entry,
        &params,
        (input.0, input.1),
        (out.0, out.1),
        (1, ""),
    )
}

fn push_block(
    ctx: &Context,
    program: &mut Program,
    input: (&dyn Bindable, &dyn Bindable),
    n: u64,
    out_base: u64,
    out: (&wgpu::Buffer, &wgpu::Buffer),
) -> Result<()> {
    let params = ReduceParams {
        n: n as u32,
        out_base: out_base as u32,
        mode: 0,
        den_given: 0,
    };
    let groups = n.div_ceil(reduce_block_len(ctx.workgroup_size()));
    let shape = format!("n={n}");
    push_reduce(
        ctx,
        program,
        Entry::ReduceBlock,
        &params,
        input,
        (out.0, out.1),
        (groups, &shape),
    )
}

/// Appends one reduce-family dispatch of `groups` workgroups over `input` into `out`.
fn push_reduce(
    ctx: &Context,
    program: &mut Program,
    entry: Entry,
    params: &ReduceParams,
    input: (&dyn Bindable, &dyn Bindable),
    (out_sum, out_den): (&dyn Bindable, &dyn Bindable),
    (groups, shape): (u64, &str),
) -> Result<()> {
    let params = uniform(ctx, "reduce params", params);
    let bind = bind(
        ctx,
        Family::Reduce,
        &[&params, input.0, input.1, out_sum, out_den],
    );
    let key = KernelKey::new(entry, Float::F32.into());
    push(ctx, program, key, bind, groups, shape)
}
