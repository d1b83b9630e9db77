//! The prepared product `a @ b.T` of two host matrices (`MatmulCall`, `xent bench --op
//! matmul`), on the strided products of matmul.rs.

use super::matmul::{Operand, Product};
use crate::error::{Result, XentError};
use crate::gpu::ops::linear::matmul::push_matmul;
use crate::gpu::runtime::buffers::{host_output, upload};
use crate::gpu::runtime::context::Context;
use crate::gpu::runtime::program::run_program;
use crate::gpu::runtime::program::Program;
use crate::gpu::runtime::readback::staging_for;
use crate::gpu::runtime::readback::Staging;
#[cfg(not(target_arch = "wasm32"))]
use crate::gpu::runtime::run_lock::run_locked;
use crate::gpu::runtime::run_lock::run_locked_async;
use crate::gpu::runtime::timestamps::timestamp_queries;
use crate::gpu::runtime::timestamps::Timestamps;
use crate::options::{Output, Tensor};
use std::time::Duration;

pub(crate) fn build_matmul(
    ctx: &Context,
    a: Tensor<f32>,
    b: Tensor<f32>,
) -> Result<PreparedMatmul> {
    let (&[m, k], &[n, kb]) = (a.shape, b.shape) else {
        return Err(XentError::InvalidShape(format!(
            "matmul takes a [M, K] and b [N, K], got {:?} and {:?}",
            a.shape, b.shape
        )));
    };
    if k != kb {
        return Err(XentError::InvalidShape(format!(
            "matmul: a is [{m}, {k}] and b is [{n}, {kb}]: K differs"
        )));
    }
    a.check_len("a")?;
    b.check_len("b")?;
    (|| {
        let operand = |data: &[f32]| -> Result<Operand> {
            Ok(Operand {
                buffer: upload(ctx, "matmul operand", data)?,
                offset: 0,
                major: k,
                step: 1,
            })
        };
        let (a, b) = (operand(a.data)?, operand(b.data)?);
        let c = host_output(ctx, "matmul output", m * n)?;
        let mut program = Program::default();
        let product = Product {
            a: &a,
            b: &b,
            c: &c,
            c_offset: 0,
            c_major: n,
            bias: None,
            dims: [m, n, k],
            alpha: 1.0,
            accumulate: false,
        };
        push_matmul(ctx, &mut program, &product)?;
        Ok(PreparedMatmul {
            ctx: ctx.clone(),
            staging: staging_for(ctx, &c, 0, (m * n * 4) as u64),
            c,
            program,
            timestamps: timestamp_queries(ctx),
            dims: [m, n, k],
            lock: Default::default(),
        })
    })()
}

/// A matrix product `a @ b.T` built once, run many times.
pub struct PreparedMatmul {
    ctx: Context,
    program: Program,
    c: wgpu::Buffer,
    staging: Staging,
    timestamps: Option<Timestamps>,
    dims: [usize; 3],
    /// Held by each run (src/gpu/runtime/run_lock.rs).
    lock: crate::gpu::runtime::run_lock::RunLock,
}

impl PreparedMatmul {
    /// Floating-point operations of one run: 2 M N K.
    pub fn flops(&self) -> f64 {
        let [m, n, k] = self.dims;
        2.0 * m as f64 * n as f64 * k as f64
    }

    /// Runs the product and reads `[M, N]` back.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run(&self) -> Result<Output> {
        Ok(run_locked(&self.ctx, &self.lock, self.run_held(false))?.0)
    }

    /// The async form of [`PreparedMatmul::run`].
    pub async fn run_async(&self) -> Result<Output> {
        let run = self.run_held(false);
        Ok(run_locked_async(&self.ctx, &self.lock, run).await?.0)
    }

    /// Runs the product and reads `[M, N]` back, with the GPU time where the adapter has
    /// timestamps.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run_timed(&self) -> Result<(Output, Option<Duration>)> {
        run_locked(&self.ctx, &self.lock, self.run_held(true))
    }

    /// One run by a caller that holds the run lock.
    pub(crate) async fn run_held(&self, timed: bool) -> Result<(Output, Option<Duration>)> {
        let reads = [(&self.c, 0, &self.staging)];
        let timestamps = self.timestamps.as_ref().filter(|_| timed);
        let run = run_program(&self.ctx, &self.program, &reads, timestamps);
        let (mut parts, elapsed) = run.await?;
        let [m, n, _] = self.dims;
        let mut data = parts.swap_remove(0);
        data.truncate(m * n);
        Ok((
            Output {
                data,
                shape: vec![m, n],
            },
            elapsed,
        ))
    }
}
