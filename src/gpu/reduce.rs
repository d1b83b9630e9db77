//! Launcher for `shaders/reduce.wgsl`: per-row (loss, den) pairs down to the scalar loss.

use super::context::Context;
use super::kernels::{reduce_block_len, Family, Kernel};
use super::program::Program;
use crate::error::Result;
use crate::options::Reduction;

/// Keep in sync with `ReduceParams` in shaders/reduce.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ReduceParams {
    n: u32,
    out_base: u32,
    mode: u32,
    _pad: u32,
}

const MODE_MEAN: u32 = 1;
const MODE_SUM: u32 = 2;

/// The reduced loss on the device: `value[0]` is the loss, `den[0]` the denominator D
/// the gradient divides by (1 for `sum`).
pub(crate) struct Reduced {
    pub value: wgpu::Buffer,
    pub den: wgpu::Buffer,
}

impl Context {
    /// Appends the reduction of `parts`, each `(losses, dens, rows)`, in their order.
    /// `reduction` must be `Mean` or `Sum`.
    pub(crate) fn push_reduction(
        &self,
        program: &mut Program,
        parts: &[(&wgpu::Buffer, &wgpu::Buffer, usize)],
        reduction: Reduction,
    ) -> Result<Reduced> {
        let block = reduce_block_len(self.workgroup_size());
        let counts: Vec<u64> = parts.iter().map(|p| (p.2 as u64).div_ceil(block)).collect();
        let total: u64 = counts.iter().sum();
        let mut sum = self.output("reduce partial sums", total as usize)?;
        let mut den = self.output("reduce partial dens", total as usize)?;
        let mut base = 0u64;
        for (part, &groups) in parts.iter().zip(&counts) {
            self.push_block(program, part.0, part.1, part.2 as u64, base, &sum, &den)?;
            base += groups;
        }
        let mut n = total;
        while n > 1 {
            let groups = n.div_ceil(block);
            let next_sum = self.output("reduce partial sums", groups as usize)?;
            let next_den = self.output("reduce partial dens", groups as usize)?;
            self.push_block(program, &sum, &den, n, 0, &next_sum, &next_den)?;
            (sum, den, n) = (next_sum, next_den, groups);
        }
        let value = self.output("loss", 1)?;
        let denominator = self.output("loss denominator", 1)?;
        let params = self.uniform(
            "reduce params",
            &ReduceParams {
                n: 1,
                out_base: 0,
                mode: match reduction {
                    Reduction::Mean => MODE_MEAN,
                    _ => MODE_SUM,
                },
                _pad: 0,
            },
        );
        let bind = self.bind(Family::Reduce, &[&params, &sum, &den, &value, &denominator]);
        self.push(
            program,
            Kernel::ReduceFinalize,
            bind,
            1,
            "reduce finalize".into(),
        )?;
        Ok(Reduced {
            value,
            den: denominator,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn push_block(
        &self,
        program: &mut Program,
        in_sum: &wgpu::Buffer,
        in_den: &wgpu::Buffer,
        n: u64,
        out_base: u64,
        out_sum: &wgpu::Buffer,
        out_den: &wgpu::Buffer,
    ) -> Result<()> {
        let params = self.uniform(
            "reduce params",
            &ReduceParams {
                n: n as u32,
                out_base: out_base as u32,
                mode: 0,
                _pad: 0,
            },
        );
        let bind = self.bind(Family::Reduce, &[&params, in_sum, in_den, out_sum, out_den]);
        let groups = n.div_ceil(reduce_block_len(self.workgroup_size()));
        self.push(
            program,
            Kernel::ReduceBlock,
            bind,
            groups,
            format!("reduce n={n}"),
        )
    }
}
