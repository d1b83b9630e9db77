//! A `linear_cross_entropy` built once, on host tensors (`LinearCall`, src/gpu/ops/linear/mod.rs)
//! or on device tensors (`DeviceLinear`, src/gpu/ops/linear/device.rs): one prepared type.
//! `run` submits it and reads back the loss, the gradients it returns (the host form's) and
//! the lse; `record` puts it into the caller's encoder, `read_loss` reads the loss afterwards.

use super::chunks::Built;
use crate::error::{Result, XentError};
use crate::gpu::runtime::cancel::record_settled;
use crate::gpu::runtime::context::Context;
use crate::gpu::runtime::device_tensor::DeviceTensor;
use crate::gpu::runtime::program::{run_program, Program};
use crate::gpu::runtime::readback::Staging;
#[cfg(not(target_arch = "wasm32"))]
use crate::gpu::runtime::run_lock::run_locked;
use crate::gpu::runtime::run_lock::{run_locked_async, RunLock};
use crate::gpu::runtime::timestamps::Timestamps;
use crate::linear::{LinearOutput, LinearProblem};
use crate::options::{DType, Output, Reduction};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A `linear_cross_entropy` built once, run or recorded many times.
///
/// Runs one at a time: each run holds the call's lock, so it may be shared by threads (in an
/// `Arc`), each run returning its own results.
pub struct PreparedLinear {
    pub(super) ctx: Context,
    /// The whole call: a device call's widening of 16-bit inputs, then the chunks.
    pub(super) program: Program,
    pub(super) built: Built,
    pub(super) problem: LinearProblem,
    pub(super) reduction: Reduction,
    /// What the device's loss is divided by on the host: N for a mean over probabilities.
    pub(super) divisor: f64,
    pub(super) loss_shape: Vec<usize>,
    /// What `run` reads back: the loss, the gradients it returns (dX, dW, and db with a
    /// bias), the lse where asked for; then, for device targets, each chunk's target check.
    pub(super) reads: Vec<(wgpu::Buffer, Staging)>,
    /// How many of `reads` are target checks, at its end (none for host targets, checked on
    /// the host).
    pub(super) checks: usize,
    /// Whether `run` returns the gradients (the host form), and whether there is a bias.
    pub(super) grads: Option<bool>,
    pub(super) lse: bool,
    /// The targets' shape, for the errors of their device check.
    pub(super) target_shape: Vec<usize>,
    pub(super) started: AtomicBool,
    pub(super) timestamps: Option<Timestamps>,
    /// Held by each run (src/gpu/runtime/run_lock.rs).
    pub(super) lock: RunLock,
}

impl PreparedLinear {
    /// Runs the call and reads back the loss, the gradients (a call on host tensors; a call
    /// on device tensors writes them into its tensors) and the lse where asked for.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run(&self) -> Result<LinearOutput> {
        Ok(run_locked(&self.ctx, &self.lock, self.run_held(false))?.0)
    }

    /// The async form of [`PreparedLinear::run`].
    pub async fn run_async(&self) -> Result<LinearOutput> {
        let run = self.run_held(false);
        Ok(run_locked_async(&self.ctx, &self.lock, run).await?.0)
    }

    /// As `run`, with the GPU time of the call where the adapter has timestamps.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run_timed(&self) -> Result<(LinearOutput, Option<Duration>)> {
        run_locked(&self.ctx, &self.lock, self.run_held(true))
    }

    /// Records the call into `encoder`, after whatever the caller recorded before (the pass
    /// that wrote the hidden states). Nothing is submitted or read: the loss lands in
    /// [`PreparedLinear::loss`], a device call's gradients in its tensors.
    pub fn record(&self, encoder: &mut wgpu::CommandEncoder) {
        self.started.store(true, Ordering::Relaxed);
        record_settled(&self.ctx, encoder, &self.program);
    }

    /// The loss on the device: an f32 scalar for `mean` and `sum`, per row for `none`. `None`
    /// for a mean over probabilities, which the host divides by N.
    pub fn loss(&self) -> Option<DeviceTensor> {
        let (buffer, shape) = (self.built.loss.clone(), self.loss_shape.clone());
        (self.divisor == 1.0).then(|| DeviceTensor::from_parts(buffer, shape, DType::F32))
    }

    /// Each row's log-sum-exp on the device, `[N]` or `[]`, when asked for.
    pub fn lse(&self) -> Option<DeviceTensor> {
        let lse = self.built.lse.clone()?;
        let shape = self.problem.rows_shape();
        Some(DeviceTensor::from_parts(lse, shape, DType::F32))
    }

    /// Reads the loss of the last submitted [`PreparedLinear::record`] back (waiting for
    /// it), and the device-target check: a class target out of range is reported here with
    /// its position, as the host API reports it.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn read_loss(&self) -> Result<Output> {
        run_locked(&self.ctx, &self.lock, self.read_loss_held())
    }

    /// The async form of [`PreparedLinear::read_loss`].
    pub async fn read_loss_async(&self) -> Result<Output> {
        run_locked_async(&self.ctx, &self.lock, self.read_loss_held()).await
    }

    /// One run by a caller that holds the run lock.
    async fn run_held(&self, timed: bool) -> Result<(LinearOutput, Option<Duration>)> {
        let p = &self.problem;
        let reads: Vec<_> = self.reads.iter().map(|(b, s)| (b, 0, s)).collect();
        let timestamps = self.timestamps.as_ref().filter(|_| timed);
        let run = run_program(&self.ctx, &self.program, &reads, timestamps);
        let (parts, elapsed) = run.await?;
        self.started.store(true, Ordering::Relaxed);
        let mut parts = parts.into_iter();
        let loss = self.loss_of(&parts.next().unwrap_or_default());
        let mut take = |len: usize, shape: Vec<usize>| {
            parts.next().map(|mut v| {
                v.truncate(len);
                Output { data: v, shape }
            })
        };
        let (mut grad_input, mut grad_linear_weight, mut grad_linear_bias) = (None, None, None);
        if let Some(has_bias) = self.grads {
            grad_input = take(p.rows * p.features, p.input_shape());
            grad_linear_weight = take(p.classes * p.features, vec![p.classes, p.features]);
            if has_bias {
                grad_linear_bias = take(p.classes, vec![p.classes]);
            }
        }
        let lse = match self.lse {
            true => take(p.rows, p.rows_shape()),
            false => None,
        };
        self.check_targets(parts.collect())?;
        let out = LinearOutput {
            loss,
            grad_input,
            grad_linear_weight,
            grad_linear_bias,
            lse,
        };
        Ok((out, elapsed))
    }

    /// `read_loss` by a caller that holds the run lock.
    async fn read_loss_held(&self) -> Result<Output> {
        if !self.started.load(Ordering::Relaxed) {
            return Err(XentError::InvalidArgument(
                "read_loss before the call was ever recorded: there is no loss yet".into(),
            ));
        }
        let checks = &self.reads[self.reads.len() - self.checks..];
        let reads: Vec<_> = std::iter::once(&self.reads[0])
            .chain(checks)
            .map(|(b, s)| (b, 0, s))
            .collect();
        let nothing = Program::default();
        let (mut words, _) = run_program(&self.ctx, &nothing, &reads, None).await?;
        let loss = self.loss_of(&words.remove(0));
        self.check_targets(words)?;
        Ok(loss)
    }

    /// The loss from the words of its buffer.
    fn loss_of(&self, words: &[f32]) -> Output {
        let data = match self.reduction {
            Reduction::None => words[..self.problem.rows].to_vec(),
            _ => vec![(words[0] as f64 / self.divisor) as f32],
        };
        Output {
            data,
            shape: self.loss_shape.clone(),
        }
    }

    /// Each chunk's target check, from the words of its flag: the first target out of range
    /// is an error naming its position.
    fn check_targets(&self, flags: Vec<Vec<f32>>) -> Result<()> {
        let checked = self
            .built
            .chunks
            .iter()
            .filter(|(s, _)| s.error_flag().is_some());
        for ((step, first_row), flag) in checked.zip(&flags) {
            step.flag_error(flag, *first_row, &self.target_shape)?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for PreparedLinear {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedLinear")
            .field("loss_shape", &self.loss_shape)
            .field("dispatches", &self.program.len())
            .finish_non_exhaustive()
    }
}
