//! A program: the ordered dispatches of one op, built once and recorded into one compute pass.
//!
//! Building (buffers, uniforms, bind groups) is separate from recording, so a caller that runs
//! the same shape again (the benchmark, a training loop) pays for it once. In a compute pass
//! each dispatch is its own synchronisation scope: wgpu inserts the barrier between a dispatch
//! that writes a buffer and a later one that reads it.

use crate::error::Result;
use crate::geometry::chunks::grid;
use crate::gpu::kernels::KernelKey;
use crate::gpu::runtime::context::Context;
use crate::gpu::runtime::readback::Staging;
use crate::gpu::runtime::readback::{copy_to, submit_and_read, submit_and_read_into};
use crate::gpu::runtime::timestamps::Timestamps;

/// One dispatch: a kernel, its bindings and its grid.
pub(crate) struct Dispatch {
    key: KernelKey,
    pipeline: std::sync::Arc<wgpu::ComputePipeline>,
    bind: wgpu::BindGroup,
    grid: (u32, u32),
    label: String,
}

/// A buffer-to-buffer copy recorded on every run: `bytes` (a multiple of 4) from `src` at
/// `src_offset` to `dst` at `dst_offset`.
#[derive(Clone)]
pub(crate) struct BufferCopy {
    pub src: wgpu::Buffer,
    pub src_offset: u64,
    pub dst: wgpu::Buffer,
    pub dst_offset: u64,
    pub bytes: u64,
}

/// The dispatches of one op, in order, and the copies recorded around them.
#[derive(Default)]
pub(crate) struct Program {
    /// Copies recorded before the pass (resetting a flag, staging a device tensor in).
    before: Vec<BufferCopy>,
    dispatches: Vec<Dispatch>,
    /// Copies recorded after the pass (staging a device tensor's result back out).
    after: Vec<BufferCopy>,
}

impl Program {
    /// Records a copy of `bytes` bytes from the start of `src` to the start of `dst` before
    /// the dispatches, on every run (e.g. to reset a flag).
    pub fn copy_before(&mut self, src: wgpu::Buffer, dst: wgpu::Buffer, bytes: u64) {
        self.before.push(BufferCopy {
            src,
            src_offset: 0,
            dst,
            dst_offset: 0,
            bytes,
        });
    }

    /// Records `copy` before the dispatches, on every run.
    pub fn copy_in(&mut self, copy: BufferCopy) {
        self.before.push(copy);
    }

    /// Records `copy` after the dispatches, on every run.
    pub fn copy_out(&mut self, copy: BufferCopy) {
        self.after.push(copy);
    }

    /// Moves `later`'s copies and dispatches to the end of this program.
    pub fn append(&mut self, mut later: Program) {
        self.before.append(&mut later.before);
        self.dispatches.append(&mut later.dispatches);
        self.after.append(&mut later.after);
    }

    /// Moves the leading dispatches whose kernels `pick` chooses, up to the first it does
    /// not, into a program of their own (the copies stay).
    pub fn take_leading(&mut self, pick: impl Fn(crate::gpu::kernels::Entry) -> bool) -> Program {
        let n = self
            .dispatches
            .iter()
            .take_while(|d| pick(d.key.entry))
            .count();
        let rest = self.dispatches.split_off(n);
        Program {
            dispatches: std::mem::replace(&mut self.dispatches, rest),
            ..Default::default()
        }
    }

    /// Number of dispatches.
    pub fn len(&self) -> usize {
        self.dispatches.len()
    }

    /// Whether any dispatch keeps rows in workgroup memory (`KernelKey::held`).
    pub fn holds_rows(&self) -> bool {
        self.dispatches.iter().any(|d| d.key.held)
    }

    /// Each dispatch's label (its kernel and shape), in order.
    pub fn labels(&self) -> Vec<String> {
        self.dispatches.iter().map(|d| d.label.clone()).collect()
    }
}

/// Appends a dispatch of `workgroups` workgroups (a 2-D grid past 65,535) of `key`,
/// labelled with the key's kernel name and `shape` (what `dispatch_labels` shows).
pub(crate) fn push(
    ctx: &Context,
    program: &mut Program,
    key: KernelKey,
    bind: wgpu::BindGroup,
    workgroups: u64,
    shape: &str,
) -> Result<()> {
    let grid = grid(
        workgroups,
        ctx.limits().max_compute_workgroups_per_dimension,
    )?;
    if grid.0 > 0 {
        program.dispatches.push(Dispatch {
            key,
            pipeline: ctx.pipeline(key),
            bind,
            grid,
            label: format!("{} {shape}", key.label()),
        });
    }
    Ok(())
}

/// Records `program` into one compute pass, with a timestamp at its start and end
/// (query indices `first` and `first + 1`) when `timestamps` is given.
pub(crate) fn record(
    encoder: &mut wgpu::CommandEncoder,
    program: &Program,
    timestamps: Option<(&wgpu::QuerySet, u32)>,
) {
    let copy = |encoder: &mut wgpu::CommandEncoder, c: &BufferCopy| {
        encoder.copy_buffer_to_buffer(&c.src, c.src_offset, &c.dst, c.dst_offset, c.bytes);
    };
    for c in &program.before {
        copy(encoder, c);
    }
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some("xent"),
        timestamp_writes: timestamps.map(|(set, first)| wgpu::ComputePassTimestampWrites {
            query_set: set,
            beginning_of_pass_write_index: Some(first),
            end_of_pass_write_index: Some(first + 1),
        }),
    });
    for d in &program.dispatches {
        pass.push_debug_group(&d.label);
        pass.set_pipeline(&d.pipeline);
        pass.set_bind_group(0, &d.bind, &[]);
        pass.dispatch_workgroups(d.grid.0, d.grid.1, 1);
        pass.pop_debug_group();
    }
    drop(pass);
    for c in &program.after {
        copy(encoder, c);
    }
}

/// Records `program` (timed when `timestamps` is given), copies each `(source, staging)`
/// pair, submits once and reads the staging buffers back. Returns their contents as f32,
/// in order, and the GPU time of the pass.
pub(crate) async fn run_program(
    ctx: &Context,
    program: &Program,
    reads: &[(&wgpu::Buffer, u64, &Staging)],
    timestamps: Option<&Timestamps>,
) -> Result<(Vec<Vec<f32>>, Option<std::time::Duration>)> {
    let mut encoder = ctx
        .shared
        .device
        .create_command_encoder(&Default::default());
    record(&mut encoder, program, timestamps.map(|t| (&t.set, 0)));
    for (src, offset, staging) in reads {
        copy_to(&mut encoder, src, *offset, staging);
    }
    let mut staged: Vec<&Staging> = reads.iter().map(|r| r.2).collect();
    if let Some(t) = timestamps {
        encoder.resolve_query_set(&t.set, 0..2, &t.resolve, 0);
        copy_to(&mut encoder, &t.resolve, 0, &t.staging);
        staged.push(&t.staging);
    }
    let mut words = submit_and_read(ctx, encoder, &staged).await?;
    let elapsed = match timestamps {
        Some(_) => {
            // Two little-endian u64 ticks, read back as four 32-bit words.
            let w: Vec<u64> = words
                .pop()
                .unwrap_or_default()
                .iter()
                .map(|f| f.to_bits() as u64)
                .collect();
            let (start, end) = (w[0] | w[1] << 32, w[2] | w[3] << 32);
            let ns =
                end.saturating_sub(start) as f64 * ctx.shared.queue.get_timestamp_period() as f64;
            Some(std::time::Duration::from_nanos(ns as u64))
        }
        None => None,
    };
    Ok((words, elapsed))
}

/// As `run_program`, untimed, with the reads copied in order into `out`.
pub(crate) async fn run_program_into(
    ctx: &Context,
    program: &Program,
    reads: &[(&wgpu::Buffer, u64, &Staging)],
    out: &mut [f32],
) -> Result<()> {
    let mut encoder = ctx
        .shared
        .device
        .create_command_encoder(&Default::default());
    record(&mut encoder, program, None);
    for (src, offset, staging) in reads {
        copy_to(&mut encoder, src, *offset, staging);
    }
    let staged: Vec<&Staging> = reads.iter().map(|r| r.2).collect();
    submit_and_read_into(ctx, encoder, &staged, out).await
}

/// Joins per-chunk results, without a copy when there is one chunk.
pub(crate) fn join(mut parts: Vec<Vec<f32>>) -> Vec<f32> {
    if parts.len() == 1 {
        parts.pop().unwrap_or_default()
    } else {
        parts.concat()
    }
}
