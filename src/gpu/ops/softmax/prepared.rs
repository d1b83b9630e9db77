//! A built log_softmax / softmax (`PreparedSoftmax`, src/gpu/ops/softmax.rs): its verbs,
//! to run it on host data or record it into the caller's encoder.

use super::PreparedSoftmax;
use crate::error::Result;
use crate::gpu::runtime::cancel::record_settled;
use crate::gpu::runtime::device_tensor::DeviceTensor;
use crate::gpu::runtime::program::{join, run_program, run_program_into};
#[cfg(not(target_arch = "wasm32"))]
use crate::gpu::runtime::run_lock::run_locked;
use crate::gpu::runtime::run_lock::run_locked_async;
use crate::options::{DType, Output};

impl PreparedSoftmax {
    /// Records the dispatches into `encoder`; the result lands in [`PreparedSoftmax::output`].
    pub fn record(&self, encoder: &mut wgpu::CommandEncoder) {
        record_settled(&self.ctx, encoder, &self.program);
    }

    /// Whether the call keeps rows in workgroup memory between its two reads of them.
    pub fn holds_rows(&self) -> bool {
        self.program.holds_rows()
    }

    /// The label of each dispatch of a run, in order: its kernel, then its shape.
    pub fn dispatch_labels(&self) -> Vec<String> {
        self.program.labels()
    }

    /// The output on the device (of a single-chunk call, as every device call is), in the
    /// dtype asked for.
    pub fn output(&self) -> DeviceTensor {
        match &self.packed {
            Some(t) => t.clone(),
            None => {
                DeviceTensor::from_parts(self.outputs[0].0.clone(), self.shape.clone(), DType::F32)
            }
        }
    }

    /// Runs the call: one submission, then the output read back. Returns the output and,
    /// when the adapter has timestamp queries, the GPU time of the compute pass.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run_timed(&self) -> Result<(Output, Option<std::time::Duration>)> {
        run_locked(&self.ctx, &self.lock, self.run_held(true))
    }

    /// Runs the call and copies the output into `out` (the output's length, row-major):
    /// memory the caller keeps and reuses, where a fresh `Vec` would first have its pages
    /// faulted in (most of the time of a large call on a CPU adapter; docs/PERFORMANCE.md).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run_into(&self, out: &mut [f32]) -> Result<()> {
        let reads: Vec<_> = self.outputs.iter().map(|(b, s)| (b, 0, s)).collect();
        let run = run_program_into(&self.ctx, &self.program, &reads, out);
        run_locked(&self.ctx, &self.lock, run)
    }

    /// The async form of [`PreparedSoftmax::run_into`].
    pub async fn run_into_async(&self, out: &mut [f32]) -> Result<()> {
        let reads: Vec<_> = self.outputs.iter().map(|(b, s)| (b, 0, s)).collect();
        let run = run_program_into(&self.ctx, &self.program, &reads, out);
        run_locked_async(&self.ctx, &self.lock, run).await
    }

    /// Runs the call: one submission, then the output read back.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run(&self) -> Result<Output> {
        Ok(run_locked(&self.ctx, &self.lock, self.run_held(false))?.0)
    }

    /// The async form of [`PreparedSoftmax::run`].
    pub async fn run_async(&self) -> Result<Output> {
        let run = self.run_held(false);
        Ok(run_locked_async(&self.ctx, &self.lock, run).await?.0)
    }

    /// `run` by a caller that holds the run lock.
    pub(super) async fn run_held(
        &self,
        timed: bool,
    ) -> Result<(Output, Option<std::time::Duration>)> {
        let reads: Vec<_> = self.outputs.iter().map(|(b, s)| (b, 0, s)).collect();
        let timestamps = self.timestamps.as_ref().filter(|_| timed);
        let (parts, elapsed) = run_program(&self.ctx, &self.program, &reads, timestamps).await?;
        let data = join(parts);
        Ok((
            Output {
                data,
                shape: self.shape.clone(),
            },
            elapsed,
        ))
    }
}
