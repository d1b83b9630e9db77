//! The adapter's own streaming bandwidth: a buffer-to-buffer copy and a trivial read kernel.

use super::context::Context;
use super::kernels::{Family, Kernel};
use super::program::Program;
use super::readback::Staging;
use super::timestamps::Timestamps;
use crate::error::Result;
use crate::options::DType;
use std::time::{Duration, Instant};

/// Keep in sync with `BandwidthParams` in shaders/bandwidth.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct BandwidthParams {
    n_pairs: u32,
    stride: u32,
    _pad: [u32; 2],
}

/// Buffers of `bytes` bytes, made once, to time a copy and a read over them.
pub struct PreparedBandwidth<'a> {
    ctx: &'a Context,
    src: wgpu::Buffer,
    dst: wgpu::Buffer,
    bytes: u64,
    program: Program,
    out: wgpu::Buffer,
    staging: Staging,
    timestamps: Option<Timestamps>,
}

impl Context {
    /// Two buffers of `bytes` bytes (rounded down to 32, capped at one binding) to time with
    /// [`PreparedBandwidth::copy`] and [`PreparedBandwidth::read`]. The read kernel loads f32
    /// the way the loss kernels load logits of that size (`Context::input_kind`).
    pub fn prepare_bandwidth(&self, bytes: u64) -> Result<PreparedBandwidth<'_>> {
        let bytes = (bytes.min(self.max_binding_bytes()) / 32 * 32).max(32);
        pollster::block_on(self.scoped(async {
            let usage = wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST;
            let make = |label| {
                self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(label),
                    size: bytes,
                    usage,
                    mapped_at_creation: false,
                })
            };
            let (src, dst) = (make("bandwidth src"), make("bandwidth dst"));
            let n_pairs = (bytes / 32) as u32;
            let wg = self.workgroup_size() as u64;
            // Enough workgroups to fill any adapter, each invocation striding over the rest.
            let workgroups = (n_pairs as u64).div_ceil(wg * 8).clamp(1, 65_535);
            let invocations = workgroups * wg;
            let params = self.uniform(
                "bandwidth params",
                &BandwidthParams {
                    n_pairs,
                    stride: invocations as u32,
                    _pad: [0; 2],
                },
            );
            let out = self.output("bandwidth out", invocations as usize)?;
            let mut program = Program::default();
            let bind = self.bind(Family::Bandwidth, &[&params, &src, &out]);
            self.push_typed(
                &mut program,
                Kernel::ReadSum,
                self.input_kind(DType::F32, [bytes]),
                bind,
                workgroups,
                "read_sum".into(),
            )?;
            Ok(PreparedBandwidth {
                ctx: self,
                src,
                dst,
                bytes,
                program,
                out,
                staging: self.staging(4),
                timestamps: self.timestamp_queries(),
            })
        }))
    }
}

impl PreparedBandwidth<'_> {
    /// Bytes each run moves through the source buffer.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// One `copy_buffer_to_buffer` of all the bytes, submitted and waited for: wall time.
    pub fn copy(&self) -> Result<Duration> {
        let ctx = self.ctx;
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(&self.src, 0, &self.dst, 0, self.bytes);
        let t = Instant::now();
        let submission = ctx.queue.submit(Some(encoder.finish()));
        ctx.device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(submission),
                timeout: None,
            })
            .map_err(|e| crate::XentError::Readback(e.to_string()))?;
        Ok(t.elapsed())
    }

    /// One run of the read kernel over all the bytes: wall time (submit to one value on the
    /// host) and, where the adapter has timestamps, the kernel time.
    pub fn read(&self) -> Result<(Duration, Option<Duration>)> {
        let t = Instant::now();
        let (_, kernel) = pollster::block_on(self.ctx.scoped(self.ctx.run_program(
            &self.program,
            &[(&self.out, 0, &self.staging)],
            self.timestamps.as_ref(),
        )))?;
        Ok((t.elapsed(), kernel))
    }
}
