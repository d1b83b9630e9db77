//! `linear_cross_entropy` over tensors already on the device: the caller's hidden states,
//! classifier and targets in, the gradients into the caller's tensors, recorded into the
//! caller's encoder.

use super::chunks::{Built, ChunkTargets, Tensors};
use super::matmul::Operand;
use crate::error::{Result, XentError};
use crate::gpu::context::Context;
use crate::gpu::device_tensor::DeviceTensor;
use crate::gpu::loss::Loss;
use crate::gpu::program::Program;
use crate::gpu::readback::Staging;
use crate::linear::{LinearProblem, DEFAULT_LINEAR_BUDGET};
use crate::options::{DType, LossOptions, Output, Reduction};
use crate::problem::check_loss_shapes;
use std::sync::atomic::{AtomicBool, Ordering};

/// A `linear_cross_entropy` over device tensors ([`Context::prepare_linear_cross_entropy_device`]):
/// `input` `[N, D]` or `[D]`, `linear_weight` `[C, D]` and `linear_bias` `[C]`, all f32, and
/// class targets `[N]` (or `[]`) of i32, u32 or i64.
#[derive(Clone, Copy, Debug)]
pub struct DeviceLinear<'a> {
    input: &'a DeviceTensor,
    linear_weight: &'a DeviceTensor,
    linear_bias: Option<&'a DeviceTensor>,
    target: &'a DeviceTensor,
    grads: Option<(&'a DeviceTensor, &'a DeviceTensor, Option<&'a DeviceTensor>)>,
    budget: usize,
    lse: bool,
}

impl<'a> DeviceLinear<'a> {
    /// The forward alone, without a bias, with the default budget.
    pub fn new(
        input: &'a DeviceTensor,
        linear_weight: &'a DeviceTensor,
        target: &'a DeviceTensor,
    ) -> Self {
        Self {
            input,
            linear_weight,
            linear_bias: None,
            target,
            grads: None,
            budget: DEFAULT_LINEAR_BUDGET,
            lse: false,
        }
    }

    /// Adds the bias `[C]`.
    pub fn bias(self, linear_bias: &'a DeviceTensor) -> Self {
        Self {
            linear_bias: Some(linear_bias),
            ..self
        }
    }

    /// Also the backward: the gradients are written (not added) into f32 tensors of the
    /// input's, the weight's and the bias's shapes (`grad_linear_bias` may be left out).
    pub fn grads_into(
        self,
        grad_input: &'a DeviceTensor,
        grad_linear_weight: &'a DeviceTensor,
        grad_linear_bias: Option<&'a DeviceTensor>,
    ) -> Self {
        Self {
            grads: Some((grad_input, grad_linear_weight, grad_linear_bias)),
            ..self
        }
    }

    /// Also keeps each row's log-sum-exp on the device ([`PreparedLinearDevice::lse`]).
    pub fn with_lse(self) -> Self {
        Self { lse: true, ..self }
    }

    /// Sets the most bytes of logits held at once (`Linear::budget`).
    pub fn budget(self, bytes: usize) -> Self {
        Self {
            budget: bytes,
            ..self
        }
    }
}

/// A device `linear_cross_entropy`, built once: record it as often as the tensors change.
pub struct PreparedLinearDevice {
    ctx: Context,
    program: Program,
    loss: wgpu::Buffer,
    loss_shape: Vec<usize>,
    loss_staging: Staging,
    built: Built,
    flag_staging: Vec<Staging>,
    target_shape: Vec<usize>,
    rows_shape: Vec<usize>,
    started: AtomicBool,
}

/// An f32 tensor of `shape`, as an f32 element position, or the error that says why not.
fn f32_at(t: &DeviceTensor, what: &str, shape: &[usize]) -> Result<usize> {
    if t.dtype() != DType::F32 {
        return Err(XentError::Unsupported(format!(
            "linear_cross_entropy on the device takes f32 {what}, got {:?} (the host API takes f16 and bf16)",
            t.dtype()
        )));
    }
    if t.shape() != shape {
        return Err(XentError::InvalidShape(format!(
            "linear_cross_entropy: expected {what} of shape {shape:?}, got {:?}",
            t.shape()
        )));
    }
    Ok(t.offset() as usize / 4)
}

impl Context {
    pub(crate) fn build_linear_device(
        &self,
        call: DeviceLinear,
        opts: &LossOptions,
    ) -> Result<PreparedLinearDevice> {
        let p = LinearProblem::new(
            call.input.shape(),
            call.linear_weight.shape(),
            call.linear_bias.map(|b| b.shape()),
        )?;
        if !matches!(call.target.dtype(), DType::I32 | DType::U32 | DType::I64) {
            return Err(XentError::Unsupported(format!(
                "linear_cross_entropy on the device takes class targets (i32, u32 or i64), got {:?} (probabilities: the host API)",
                call.target.dtype()
            )));
        }
        let logits_shape = p.logits_shape();
        let len = p.rows * p.classes;
        let target_shape = call.target.shape();
        check_loss_shapes(
            Loss::CrossEntropy,
            &logits_shape,
            len,
            target_shape,
            false,
            opts,
        )?;
        let operand = |t: &DeviceTensor, what, shape: &[usize]| -> Result<Operand> {
            Ok(Operand {
                buffer: t.buffer().clone(),
                offset: f32_at(t, what, shape)?,
                major: p.features,
                step: 1,
            })
        };
        let (weight_shape, bias_shape) = ([p.classes, p.features], [p.classes]);
        let at = |t: &DeviceTensor, what, shape: &[usize]| -> Result<(wgpu::Buffer, usize)> {
            Ok((t.buffer().clone(), f32_at(t, what, shape)?))
        };
        let grads = match call.grads {
            Some((dx, dw, db)) => Some((
                at(dx, "grad_input", &p.input_shape())?,
                at(dw, "grad_linear_weight", &weight_shape)?,
                match (db, call.linear_bias) {
                    (Some(db), Some(_)) => Some(at(db, "grad_linear_bias", &bias_shape)?),
                    (Some(_), None) => {
                        return Err(XentError::InvalidArgument(
                            "linear_cross_entropy: grad_linear_bias given without a bias".into(),
                        ))
                    }
                    (None, _) => None,
                },
            )),
            None => None,
        };
        let tensors = Tensors {
            x: operand(call.input, "input", &p.input_shape())?,
            w: operand(call.linear_weight, "linear_weight", &weight_shape)?,
            bias: match call.linear_bias {
                Some(b) => Some(at(b, "linear_bias", &bias_shape)?),
                None => None,
            },
            targets: ChunkTargets::Classes(call.target),
            grads,
            budget: call.budget,
            lse: call.lse,
        };
        let mut built = crate::gpu::poller::block(
            self.scoped(async { self.build_linear_chunks(&tensors, &p, opts) }),
        )?;
        let loss_shape = match opts.reduction {
            Reduction::None => target_shape.to_vec(),
            _ => vec![],
        };
        let loss_len = match opts.reduction {
            Reduction::None => p.rows,
            _ => 1,
        };
        Ok(PreparedLinearDevice {
            ctx: self.clone(),
            program: std::mem::take(&mut built.program),
            loss: built.loss.clone(),
            loss_staging: self.staging_for(&built.loss, 0, (loss_len.max(1) * 4) as u64),
            flag_staging: built.chunks.iter().map(|_| self.staging(16)).collect(),
            built,
            loss_shape,
            target_shape: target_shape.to_vec(),
            rows_shape: p.rows_shape(),
            started: false.into(),
        })
    }
}

impl PreparedLinearDevice {
    /// Records the call into `encoder`, after whatever the caller recorded before (the pass
    /// that wrote the hidden states). Nothing is submitted or read: the loss lands in
    /// [`PreparedLinearDevice::loss`], the gradients in the tensors given.
    pub fn record(&self, encoder: &mut wgpu::CommandEncoder) {
        self.started.store(true, Ordering::Relaxed);
        self.ctx.record(encoder, &self.program, None);
    }

    /// The loss on the device: an f32 scalar for `mean` and `sum`, per row for `none`.
    pub fn loss(&self) -> DeviceTensor {
        DeviceTensor::from_parts(self.loss.clone(), self.loss_shape.clone(), DType::F32)
    }

    /// Each row's log-sum-exp on the device, `[N]` or `[]`, when built with
    /// [`DeviceLinear::with_lse`].
    pub fn lse(&self) -> Option<DeviceTensor> {
        let lse = self.built.lse.clone()?;
        Some(DeviceTensor::from_parts(
            lse,
            self.rows_shape.clone(),
            DType::F32,
        ))
    }

    /// Reads the loss of the last submitted [`PreparedLinearDevice::record`] back (waiting
    /// for it), and the device-target check: a class target out of range is reported here
    /// with its position, as the host API reports it.
    pub fn read_loss(&self) -> Result<Output> {
        if !self.started.load(Ordering::Relaxed) {
            return Err(XentError::InvalidArgument(
                "read_loss before the call was ever recorded: there is no loss yet".into(),
            ));
        }
        let mut reads = vec![(&self.loss, 0, &self.loss_staging)];
        let flags = self.built.chunks.iter().zip(&self.flag_staging);
        for ((step, _), staging) in flags {
            if let Some(flag) = step.error_flag() {
                reads.push((flag, 0, staging));
            }
        }
        let nothing = Program::default();
        let run = self.ctx.run_program(&nothing, &reads, None);
        let (mut words, _) = crate::gpu::poller::block(self.ctx.scoped(run))?;
        let loss = words.remove(0);
        for ((step, first_row), flag) in self.built.chunks.iter().zip(&words) {
            step.flag_error(flag, *first_row, &self.target_shape)?;
        }
        let len = self.loss_shape.iter().product::<usize>();
        Ok(Output {
            data: loss[..len].to_vec(),
            shape: self.loss_shape.clone(),
        })
    }
}

impl std::fmt::Debug for PreparedLinearDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedLinearDevice")
            .field("loss_shape", &self.loss_shape)
            .field("dispatches", &self.program.len())
            .finish_non_exhaustive()
    }
}
