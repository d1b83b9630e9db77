//! Launcher for `shaders/convert.wgsl`: f32 results packed into f16 / bf16 words, or
//! gathered out of a strided layout.

use super::buffers::Bindable;
use super::context::Context;
use super::kernels::{Entry, Family, KernelKey};
use super::program::Program;
use crate::error::{Result, XentError};
use crate::gpu::kernels::uniform;
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

/// `ConvertParams::mode` of a 16-bit dtype: 1 for f16, 2 for bf16 (`what` names the caller
/// in the error for f32).
fn half_mode(dtype: Float, what: &str) -> Result<u32> {
    match dtype {
        Float::F16 => Ok(1),
        Float::BF16 => Ok(2),
        Float::F32 => Err(XentError::InvalidArgument(format!(
            "{what} f32: not a 16-bit dtype"
        ))),
    }
}

impl Context {
    /// Appends the packing of `n` f32 values of `src` into `dtype` words of `dst`.
    pub(crate) fn push_pack(
        &self,
        program: &mut Program,
        src: &dyn Bindable,
        dst: &dyn Bindable,
        n: usize,
        dtype: Float,
    ) -> Result<()> {
        let mode = half_mode(dtype, "packing into")?;
        let params = self.uniform(
            "convert params",
            &ConvertParams {
                n: n as u32,
                mode,
                stride: 0,
                first: 0,
            },
        );
        let bind = self.bind(Family::Convert, &[&params, src, dst]);
        let words = n.div_ceil(2) as u64;
        let groups = words.div_ceil(self.workgroup_size() as u64);
        let key = KernelKey::new(Entry::PackHalf, Float::F32.into());
        self.push(program, key, bind, groups, &format!("{n} to {dtype:?}"))
    }
}

impl Context {
    /// Appends the widening of `n` 16-bit values of `src` (`dtype`, two a word) into f32 `dst`.
    pub(crate) fn push_widen(
        &self,
        program: &mut Program,
        src: &dyn Bindable,
        dst: &dyn Bindable,
        n: usize,
        dtype: Float,
    ) -> Result<()> {
        let mode = half_mode(dtype, "widening")?;
        let params = ConvertParams {
            n: n as u32,
            mode,
            stride: 0,
            first: 0,
        };
        let params = self.uniform("widen params", &params);
        let bind = self.bind(Family::Convert, &[&params, src, dst]);
        let groups = (n as u64).div_ceil(self.workgroup_size() as u64);
        let key = KernelKey::new(Entry::WidenHalf, Float::F32.into());
        self.push(program, key, bind, groups, &format!("{n} from {dtype:?}"))
    }

    /// Appends `dst[k] = src[k * stride + first]` for `k < n` (f32 values, bit for bit).
    pub(crate) fn push_gather(
        &self,
        program: &mut Program,
        src: &dyn Bindable,
        dst: &dyn Bindable,
        n: usize,
        stride: u32,
        first: u32,
    ) -> Result<()> {
        let params = self.uniform(
            "gather params",
            &ConvertParams {
                n: n as u32,
                mode: 0,
                stride,
                first,
            },
        );
        let bind = self.bind(Family::Convert, &[&params, src, dst]);
        let groups = (n as u64).div_ceil(self.workgroup_size() as u64);
        let key = KernelKey::new(Entry::Gather, Float::F32.into());
        self.push(
            program,
            key,
            bind,
            groups,
            &format!("{n} (stride {stride})"),
        )
    }
}
