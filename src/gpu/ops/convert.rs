//! Launcher for `shaders/convert.wgsl`: f32 results packed into f16 / bf16 words, or
//! gathered out of a strided layout.

use crate::error::{Result, XentError};
use crate::gpu::kernels::uniform;
use crate::gpu::kernels::{Entry, Family, KernelKey};
use crate::gpu::runtime::buffers::Bindable;
use crate::gpu::runtime::buffers::{bind, uniform};
use crate::gpu::runtime::context::Context;
use crate::gpu::runtime::program::push;
use crate::gpu::runtime::program::Program;
use crate::options::Float;

uniform! {
    /// The uniform of shaders/convert.wgsl: what each field means is documented there.
    pub(crate) struct ConvertParams in Convert {
        n: u32,
        mode: u32,
        stride: u32,
        first: u32,
    }
}

/// `ConvertParams::mode` of a 16-bit dtype: 1 for f16, 2 for bf16 (`what` names the
/// conversion in the error for f32).
fn half_mode(dtype: Float, what: &str) -> Result<u32> {
    match dtype {
        Float::F16 => Ok(1),
        Float::BF16 => Ok(2),
        Float::F32 => Err(XentError::InvalidArgument(format!(
            "a 16-bit conversion ({what}): f32 is not a 16-bit dtype"
        ))),
    }
}

/// Appends the packing of `n` f32 values of `src` into `dtype` words of `dst`, one
/// invocation a word.
pub(crate) fn push_pack(
    ctx: &Context,
    program: &mut Program,
    src: &dyn Bindable,
    dst: &dyn Bindable,
    n: usize,
    dtype: Float,
) -> Result<()> {
    let threads = n.div_ceil(2);
    let label = format!("{n} to {dtype:?}");
    push_half(
        ctx,
        program,
        Entry::PackHalf,
        (src, dst),
        (n, threads),
        (dtype, &label),
    )
}

/// Appends the widening of `n` 16-bit values of `src` (`dtype`, two a word) into f32
/// `dst`, one invocation a value.
pub(crate) fn push_widen(
    ctx: &Context,
    program: &mut Program,
    src: &dyn Bindable,
    dst: &dyn Bindable,
    n: usize,
    dtype: Float,
) -> Result<()> {
    let label = format!("{n} from {dtype:?}");
    push_half(
        ctx,
        program,
        Entry::WidenHalf,
        (src, dst),
        (n, n),
        (dtype, &label),
    )
}

/// Appends `entry`, a 16-bit conversion of `n` values, over `threads` invocations.
fn push_half(
    ctx: &Context,
    program: &mut Program,
    entry: Entry,
    (src, dst): (&dyn Bindable, &dyn Bindable),
    (n, threads): (usize, usize),
    (dtype, label): (Float, &str),
) -> Result<()> {
    let params = ConvertParams {
        n: n as u32,
        mode: half_mode(dtype, label)?,
        stride: 0,
        first: 0,
    };
    let params = uniform(ctx, "convert params", &params);
    let bind = bind(ctx, Family::Convert, &[&params, src, dst]);
    let groups = (threads as u64).div_ceil(ctx.workgroup_size() as u64);
    let key = KernelKey::new(entry, Float::F32.into());
    push(ctx, program, key, bind, groups, label)
}

/// Appends `dst[k] = src[k * stride + first]` for `k < n` (f32 values, bit for bit).
pub(crate) fn push_gather(
    ctx: &Context,
    program: &mut Program,
    src: &dyn Bindable,
    dst: &dyn Bindable,
    n: usize,
    stride: u32,
    first: u32,
) -> Result<()> {
    let params = uniform(
        ctx,
        "gather params",
        &ConvertParams {
            n: n as u32,
            mode: 0,
            stride,
            first,
        },
    );
    let bind = bind(ctx, Family::Convert, &[&params, src, dst]);
    let groups = (n as u64).div_ceil(ctx.workgroup_size() as u64);
    let key = KernelKey::new(Entry::Gather, Float::F32.into());
    push(
        ctx,
        program,
        key,
        bind,
        groups,
        &format!("{n} (stride {stride})"),
    )
}
