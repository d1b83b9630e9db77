//! A loss call built once (`PreparedLoss`): its program, buffers and staging, run or recorded
//! as often as needed; the loss, gradient and lse read back by name.

use super::buffers::{row_chunks, ChunkBuffers, Common};
use super::plan::LossSpec;
use super::{Grad, Request, Results};
use crate::error::Result;
use crate::gpu::ops::reduce::Reduced;
use crate::gpu::runtime::cancel::record_settled;
use crate::gpu::runtime::context::Context;
use crate::gpu::runtime::program::run_program;
use crate::gpu::runtime::program::{join, Program};
use crate::gpu::runtime::readback::Staging;
use crate::gpu::runtime::readback::{staging, staging_for};
#[cfg(not(target_arch = "wasm32"))]
use crate::gpu::runtime::run_lock::run_locked;
use crate::gpu::runtime::run_lock::run_locked_async;
use crate::gpu::runtime::timestamps::timestamp_queries;
use crate::gpu::runtime::timestamps::Timestamps;
use crate::options::{Float, LossAndGrad, LossOptions, Output, Reduction};

/// The prepared call over a built program: its staging buffers, made once and reused by
/// every run.
pub(crate) fn prepared_loss(
    ctx: &Context,
    program: Program,
    (common, bufs, reduced): (Common, Vec<ChunkBuffers>, Option<Reduced>),
    (spec, opts, req): (&LossSpec, &LossOptions, Request),
) -> PreparedLoss {
    // An embedded call is read through the program that holds it: no staging of its own.
    let staged = !req.embedded;
    let loss_staging = match &reduced {
        _ if !staged => vec![],
        Some(_) => vec![staging(ctx, 4)],
        None => row_chunks(&bufs)
            .map(|b| staging(ctx, b.rows as u64 * 4))
            .collect(),
    };
    let grad_staging = match req.grad {
        _ if !staged => vec![],
        Grad::None => vec![],
        _ => bufs
            .iter()
            .map(|b| {
                let g = b.grad.as_ref().unwrap_or(&b.input.logits);
                staging_for(ctx, &g.buffer, g.offset, b.elems as u64 * 4)
            })
            .collect(),
    };
    let lse_staging = match req.lse && staged {
        true => row_chunks(&bufs)
            .map(|b| staging(ctx, b.rows as u64 * 4))
            .collect(),
        false => vec![],
    };
    PreparedLoss {
        ctx: ctx.clone(),
        program,
        reduced,
        chunks: bufs,
        loss_staging,
        grad_staging,
        lse_staging,
        error: spec
            .check_targets
            .then(|| (common.error.clone(), staging(ctx, 16))),
        batch: super::batch::Batch {
            options: LossOptions {
                weight: None,
                ..*opts
            },
            weighted: opts.weight.is_some(),
            uploaded: spec.uploaded,
            layout: spec.layout,
            outer: spec.layout.outer.into(),
            weight: common.weight.clone(),
            scale: common.scale.clone(),
        },
        timestamps: timestamp_queries(ctx).filter(|_| staged),
        lse_shape: spec.out_shape.clone(),
        loss_shape: match opts.reduction {
            Reduction::None => spec.out_shape.clone(),
            _ => vec![],
        },
        input_shape: spec.input_shape.clone(),
        target_shape: spec.target_shape.clone(),
        classes: spec.layout.classes,
        ignore_index: spec.ignore_index as i64,
        dtype: spec.dtype,
        req,
        started: false.into(),
        lock: Default::default(),
    }
}

/// A loss call built once (`ctx.prepare(&LossCall::..)`), on host data uploaded into buffers
/// of ours or on the caller's device tensors: its bind groups, dispatches and staging buffers.
/// Each run ([`PreparedLoss::run`], `run_batch`, `run_timed`) is one submission and one
/// readback; a device call is recorded ([`PreparedLoss::record`]) and read (`read_loss`).
///
/// Runs one at a time: its runs and reads hold the call's lock, so it may be shared by threads
/// (in an `Arc`) and joined futures, and a dropped `…_async` future leaves it usable. A
/// blocking method called while an unfinished future of the same thread holds it returns
/// [`crate::XentError::Busy`].
pub struct PreparedLoss {
    pub(super) ctx: Context,
    pub(super) program: Program,
    pub(super) reduced: Option<Reduced>,
    pub(super) chunks: Vec<ChunkBuffers>,
    pub(super) loss_staging: Vec<Staging>,
    pub(super) grad_staging: Vec<Staging>,
    pub(super) lse_staging: Vec<Staging>,
    /// The device-target error flag and its staging buffer (device targets only).
    pub(super) error: Option<(wgpu::Buffer, Staging)>,
    timestamps: Option<Timestamps>,
    pub(super) loss_shape: Vec<usize>,
    lse_shape: Vec<usize>,
    pub(super) input_shape: Vec<usize>,
    pub(super) target_shape: Vec<usize>,
    pub(super) classes: usize,
    pub(super) ignore_index: i64,
    pub(super) dtype: Float,
    pub(super) req: Request,
    /// Whether the call was ever recorded or run: before that there is no loss to read.
    pub(super) started: std::sync::atomic::AtomicBool,
    /// What a new batch is checked against and written into (src/gpu/ops/loss/batch.rs).
    pub(super) batch: super::batch::Batch,
    /// Held by each run and read (src/gpu/runtime/run_lock.rs).
    pub(super) lock: crate::gpu::runtime::run_lock::RunLock,
}

impl PreparedLoss {
    /// Runs the call: one submission, then everything it was prepared for read back: the
    /// loss, and the gradient and each row's lse when asked for.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run(&self) -> Result<LossAndGrad> {
        let run = self.run_reading(true, false);
        let (r, _) = run_locked(&self.ctx, &self.lock, run)?;
        Ok(r.into_loss_and_grad(&self.input_shape))
    }

    /// The async form of [`PreparedLoss::run`].
    pub async fn run_async(&self) -> Result<LossAndGrad> {
        let run = self.run_reading(true, false);
        let (r, _) = run_locked_async(&self.ctx, &self.lock, run).await?;
        Ok(r.into_loss_and_grad(&self.input_shape))
    }

    /// Runs the call as a benchmark times it: one submission, then the loss (and lse) read
    /// back, the gradient left on the device ([`PreparedLoss::read_grad`]). Returns the
    /// results and, when the adapter has timestamp queries, the GPU time of the pass.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run_timed(&self) -> Result<(LossAndGrad, Option<std::time::Duration>)> {
        let run = self.run_reading(false, true);
        run_locked(&self.ctx, &self.lock, run)
            .map(|(r, t)| (r.into_loss_and_grad(&self.input_shape), t))
    }

    /// Replaces the logits (same shape) with `data`: a queue write, no allocation, and every
    /// prepared row walked again (after a shorter `run_batch`). A call on host data only.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn write_logits(&self, data: &[f32]) -> Result<()> {
        let total: usize = self.chunks.iter().map(|c| c.elems).sum();
        if data.len() != total {
            return Err(crate::XentError::InvalidShape(format!(
                "write_logits: expected {total} values, got {}",
                data.len()
            )));
        }
        if self.dtype != Float::F32 {
            return Err(crate::XentError::Unsupported(
                "write_logits takes f32 values; these logits are 16-bit".into(),
            ));
        }
        if !self.batch.uploaded {
            return Err(crate::XentError::Unsupported(
                "write_logits writes the call's own buffers: a call on device tensors reads \
                 yours"
                    .into(),
            ));
        }
        let _run = self.lock.wait("write_logits")?;
        // A whole batch of logits: every prepared row is walked again.
        self.set_rows(self.batch.layout.outer)?;
        let mut at = 0;
        for c in &self.chunks {
            let logits = &c.input.logits;
            let bytes: &[u8] = bytemuck::cast_slice(&data[at..at + c.elems]);
            self.ctx
                .queue()
                .write_buffer(&logits.buffer, logits.offset, bytes);
            at += c.elems;
        }
        Ok(())
    }

    /// The call's program, to record inside a larger one (linear_cross_entropy's chunks);
    /// take [`PreparedLoss::loss`] first.
    pub(crate) fn take_program(&mut self) -> crate::gpu::runtime::program::Program {
        std::mem::take(&mut self.program)
    }

    /// The buffer whose first value the gradient divides by (D; 1 for `sum` and `none`).
    pub(crate) fn scale(&self) -> &wgpu::Buffer {
        &self.batch.scale
    }

    /// The per-row losses and mean denominators of a single-chunk call (a device call).
    pub(crate) fn row_outputs(&self) -> (wgpu::Buffer, wgpu::Buffer) {
        (self.chunks[0].losses.clone(), self.chunks[0].dens.clone())
    }

    /// The rows of a single-chunk call.
    pub(crate) fn rows(&self) -> usize {
        self.chunks[0].rows
    }

    /// Adds the copies that stage device tensors through padded buffers of ours
    /// (`DeviceTensor::grouped`) around every run.
    pub(crate) fn stage(&mut self, copies: crate::gpu::runtime::program::Program) {
        self.program.append(copies);
    }

    /// Records the call's dispatches into `encoder` (after whatever the caller recorded
    /// before, e.g. the pass that wrote the logits). Nothing is submitted or read: the loss
    /// lands in [`PreparedLoss::loss`], the gradient where it was asked to go. What a dropped
    /// `…_async` run left mapped is settled first, which may wait for that run's submission.
    pub fn record(&self, encoder: &mut wgpu::CommandEncoder) {
        self.started
            .store(true, std::sync::atomic::Ordering::Relaxed);
        record_settled(&self.ctx, encoder, &self.program);
    }

    /// The loss on the device: an f32 scalar for `mean` and `sum`, per position for `none`.
    /// `None` for a `none` loss cut into chunks (host data past one binding), which no
    /// one tensor holds; a device call is always one chunk.
    pub fn loss(&self) -> Option<crate::DeviceTensor> {
        let (buffer, shape) = match &self.reduced {
            Some(r) => (r.value.clone(), vec![]),
            None if self.chunks.len() == 1 => {
                (self.chunks[0].losses.clone(), self.loss_shape.clone())
            }
            None => return None,
        };
        Some(crate::DeviceTensor::from_parts(
            buffer,
            shape,
            crate::DType::F32,
        ))
    }

    /// Each row's log-sum-exp on the device, shape `[N, d1..dk]`, when the call was prepared
    /// with it (`LossCall::lse`) and one chunk holds it (a device call always does).
    pub fn lse(&self) -> Option<crate::DeviceTensor> {
        if self.chunks.len() != 1 {
            return None;
        }
        let lse = self.chunks[0].lse.clone()?;
        Some(crate::DeviceTensor::from_parts(
            lse,
            self.lse_shape.clone(),
            crate::DType::F32,
        ))
    }

    /// Whether the call keeps rows in workgroup memory between its two reads of them (one
    /// read of the logits instead of two).
    pub fn holds_rows(&self) -> bool {
        self.program.holds_rows()
    }

    /// Number of dispatches in one run.
    pub fn dispatches(&self) -> usize {
        self.program.len()
    }

    /// The label of each dispatch of a run, in order: its kernel, then its shape (e.g.
    /// `CrossEntropyFusedHeld rows=8 C=4096 inner=1`). The dispatch chosen shows here.
    pub fn dispatch_labels(&self) -> Vec<String> {
        self.program.labels()
    }

    pub(crate) async fn run_results(&self) -> Result<(Results, Option<std::time::Duration>)> {
        let _run = self.lock.hold().await;
        self.run_reading(true, false).await
    }

    /// One submission, reading the loss, then the gradient when `read_grad`, then the lse;
    /// and the GPU time of the pass when `timed` (and the adapter has timestamps). The
    /// caller holds the run lock.
    pub(super) async fn run_reading(
        &self,
        read_grad: bool,
        timed: bool,
    ) -> Result<(Results, Option<std::time::Duration>)> {
        self.started
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let mut reads = self.loss_reads();
        let read_grad = read_grad && !self.grad_staging.is_empty();
        let grad_staging: &[Staging] = if read_grad { &self.grad_staging } else { &[] };
        reads.extend(
            self.grad_sources()
                .zip(grad_staging)
                .map(|((b, o), s)| (b, o, s)),
        );
        reads.extend(
            row_chunks(&self.chunks)
                .filter_map(|c| c.lse.as_ref())
                .zip(&self.lse_staging)
                .map(|(lse, s)| (lse, 0, s)),
        );
        if let Some((flag, staging)) = &self.error {
            reads.push((flag, 0, staging));
        }
        let (mut words, elapsed) = run_program(
            &self.ctx,
            &self.program,
            &reads,
            self.timestamps.as_ref().filter(|_| timed),
        )
        .await?;
        if self.error.is_some() {
            self.check_error(&words.pop().unwrap_or_default())?;
        }
        let mut parts = words.into_iter();
        let loss = Output {
            data: join(parts.by_ref().take(self.loss_staging.len()).collect()),
            shape: self.loss_shape.clone(),
        };
        let grad = (self.req.grad != Grad::None && read_grad)
            .then(|| join(parts.by_ref().take(grad_staging.len()).collect()));
        let lse = self.req.lse.then(|| join(parts.collect()));
        Ok((Results { loss, grad, lse }, elapsed))
    }
}

impl std::fmt::Debug for PreparedLoss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedLoss")
            .field("input_shape", &self.input_shape)
            .field("dtype", &self.dtype)
            .field("loss_shape", &self.loss_shape)
            .field("chunks", &self.chunks.len())
            .field("dispatches", &self.program.len())
            .finish_non_exhaustive()
    }
}
