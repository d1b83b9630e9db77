//! The adapter's own streaming bandwidth: a buffer-to-buffer copy, a trivial read kernel and a
//! trivial write kernel.

use crate::error::Result;
use crate::gpu::kernels::uniform;
use crate::gpu::kernels::{Entry, Family, KernelKey, Variant};
use crate::gpu::runtime::buffers::{bind, output, uniform};
use crate::gpu::runtime::context::Context;
use crate::gpu::runtime::program::push;
use crate::gpu::runtime::program::run_program;
use crate::gpu::runtime::program::Program;
use crate::gpu::runtime::readback::staging;
use crate::gpu::runtime::readback::Staging;
use crate::gpu::runtime::run_lock::run_locked;
use crate::gpu::runtime::timestamps::timestamp_queries;
use crate::gpu::runtime::timestamps::Timestamps;
use crate::options::Float;
use std::time::{Duration, Instant};

uniform! {
    /// The uniform of shaders/bandwidth.wgsl: what each field means is documented there.
    pub(crate) struct BandwidthParams in Bandwidth {
        n_pairs: u32,
        block: u32,
        _pad: [u32; 2],
    }
}

/// Buffers of `bytes` bytes, made once, to time a copy, a read and a write over them.
pub struct PreparedBandwidth {
    ctx: Context,
    src: wgpu::Buffer,
    dst: wgpu::Buffer,
    bytes: u64,
    program: Program,
    write: Program,
    out: wgpu::Buffer,
    staging: Staging,
    timestamps: Option<Timestamps>,
    /// Held by each run (src/gpu/runtime/run_lock.rs).
    lock: crate::gpu::runtime::run_lock::RunLock,
}

/// Two buffers of `bytes` bytes (rounded down to 32, capped at one binding) to time with
/// [`PreparedBandwidth::copy`], [`PreparedBandwidth::read`] and
/// [`PreparedBandwidth::write`]. The read kernel loads f32 the way the loss kernels load
/// logits of that size (`Context::variant`), and the write kernel stores them the way
/// the kernels write a row output (`Context::with_wide_output`).
pub(crate) fn build_bandwidth(ctx: &Context, bytes: u64) -> Result<PreparedBandwidth> {
    let bytes = (bytes.min(ctx.max_binding_bytes()) / 32 * 32).max(32);
    (|| {
        let usage = wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST;
        let make = |label| {
            ctx.shared.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage,
                mapped_at_creation: false,
            })
        };
        let (src, dst) = (make("bandwidth src"), make("bandwidth dst"));
        let n_pairs = (bytes / 32) as u32;
        let wg = ctx.workgroup_size() as u64;
        // A contiguous block of pairs per workgroup, 16 a lane: enough workgroups to fill
        // any adapter, in one grid dimension.
        let block = (wg * 16).max((n_pairs as u64).div_ceil(65_535));
        let workgroups = (n_pairs as u64).div_ceil(block).max(1);
        let invocations = workgroups * wg;
        let params = uniform(
            ctx,
            "bandwidth params",
            &BandwidthParams {
                n_pairs,
                block: block as u32,
                _pad: [0; 2],
            },
        );
        let out = output(ctx, "bandwidth out", invocations as usize)?;
        let mut program = Program::default();
        // `bytes` is whole 32-byte units, so the output is written as wide as any can be.
        let kind = Variant {
            wide_out: ctx.wide_f32(),
            ..ctx.variant(Float::F32, [bytes])
        };
        let mut write = Program::default();
        for (program, entry) in [
            (&mut program, Entry::ReadSum),
            (&mut write, Entry::WriteFill),
        ] {
            let bind = bind(ctx, Family::Bandwidth, &[&params, &src, &out, &dst]);
            let key = KernelKey::new(entry, kind);
            push(ctx, program, key, bind, workgroups, "")?;
        }
        Ok(PreparedBandwidth {
            ctx: ctx.clone(),
            src,
            dst,
            bytes,
            program,
            write,
            out,
            staging: staging(ctx, 4),
            timestamps: timestamp_queries(ctx),
            lock: Default::default(),
        })
    })()
}

impl PreparedBandwidth {
    /// Bytes each run moves through the source buffer.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// One `copy_buffer_to_buffer` of all the bytes, submitted and waited for: wall time.
    pub fn copy(&self) -> Result<Duration> {
        let _run = self.lock.wait("copy")?;
        let ctx = &self.ctx;
        let mut encoder = ctx
            .shared
            .device
            .create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(&self.src, 0, &self.dst, 0, self.bytes);
        let t = Instant::now();
        let submission = ctx.shared.queue.submit(Some(encoder.finish()));
        ctx.shared
            .device
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
        let reads = [(&self.out, 0, &self.staging)];
        let run = run_program(&self.ctx, &self.program, &reads, self.timestamps.as_ref());
        let (_, kernel) = run_locked(&self.ctx, &self.lock, run)?;
        Ok((t.elapsed(), kernel))
    }

    /// One run of the write kernel over all the bytes: wall time (submit to done) and, where
    /// the adapter has timestamps, the kernel time.
    pub fn write(&self) -> Result<(Duration, Option<Duration>)> {
        let t = Instant::now();
        let run = run_program(&self.ctx, &self.write, &[], self.timestamps.as_ref());
        let (_, kernel) = run_locked(&self.ctx, &self.lock, run)?;
        Ok((t.elapsed(), kernel))
    }
}
