//! `linear_cross_entropy` over tensors already on the device: the caller's hidden states,
//! classifier and targets in, the gradients into the caller's tensors, recorded into the
//! caller's encoder.

use super::chunks::{At, ChunkTargets, Tensors};
use super::matmul::Operand;
use super::PreparedLinear;
use crate::error::{Result, XentError};
use crate::geometry::windows::aligned_pieces;
use crate::gpu::api::Grad;
use crate::gpu::ops::convert::push_widen;
use crate::gpu::ops::linear::chunks::build_linear_chunks;
use crate::gpu::ops::loss::Loss;
use crate::gpu::runtime::buffers::output;
use crate::gpu::runtime::buffers::Bound;
use crate::gpu::runtime::context::Context;
use crate::gpu::runtime::device_tensor::DeviceTensor;
use crate::gpu::runtime::program::Program;
use crate::gpu::runtime::readback::staging_for;
use crate::gpu::runtime::timestamps::timestamp_queries;
use crate::linear::{LinearProblem, DEFAULT_LINEAR_BUDGET};
use crate::options::{DType, Float, LossOptions, Reduction};
use crate::problem::check_loss_shapes;

/// Where the gradients go: the input's, the weight's and the bias's (if any), f32.
pub(crate) type Grads<'a> = (&'a DeviceTensor, &'a DeviceTensor, Option<&'a DeviceTensor>);

/// A `linear_cross_entropy` over device tensors (`ctx.prepare(&DeviceLinear::new(..))`):
/// `input` `[N, D]` or `[D]`, `linear_weight` `[C, D]` and `linear_bias` `[C]`, each f32, f16
/// or bf16 (16-bit ones are widened into f32 copies of ours on every run: 4 bytes an element
/// more device memory), and class targets `[N]` (or `[]`) of i32, u32 or i64.
#[derive(Clone, Copy, Debug)]
pub struct DeviceLinear<'a> {
    input: &'a DeviceTensor,
    linear_weight: &'a DeviceTensor,
    linear_bias: Option<&'a DeviceTensor>,
    target: &'a DeviceTensor,
    grad: Grad<'a>,
    budget: usize,
    lse: bool,
    options: LossOptions<'a>,
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
            grad: Grad::None,
            budget: DEFAULT_LINEAR_BUDGET,
            lse: false,
            options: LossOptions::default(),
        }
    }

    /// Adds the bias `[C]`.
    #[must_use = "returns the updated description"]
    pub fn bias(self, linear_bias: &'a DeviceTensor) -> Self {
        Self {
            linear_bias: Some(linear_bias),
            ..self
        }
    }

    /// Also the backward (`Grad::Into(&[grad_input, grad_linear_weight, grad_linear_bias])`,
    /// the bias's may be left out): the gradients are written (not added) into f32 tensors
    /// of the input's, the weight's and the bias's shapes. `Grad::None`: the forward alone.
    /// Anything else is refused when the call is built.
    #[must_use = "returns the updated description"]
    pub fn grad(self, grad: Grad<'a>) -> Self {
        Self { grad, ..self }
    }

    /// Where the gradients go: dX, dW and db (which may be left out).
    fn grads(&self) -> Result<Option<Grads<'a>>> {
        Ok(
            match self.grad.tensors("a device linear_cross_entropy", 2..=3)? {
                None => None,
                Some(&[x, w]) => Some((x, w, None)),
                Some(g) => Some((g[0], g[1], Some(g[2]))),
            },
        )
    }

    /// With these loss options.
    #[must_use = "returns the updated description"]
    pub fn options(self, options: LossOptions<'a>) -> Self {
        Self { options, ..self }
    }

    /// Keeps (or not) each row's log-sum-exp on the device ([`crate::PreparedLinear::lse`]).
    #[must_use = "returns the updated description"]
    pub fn lse(self, lse: bool) -> Self {
        Self { lse, ..self }
    }

    /// Sets the most bytes of logits held at once (`Linear::budget`).
    #[must_use = "returns the updated description"]
    pub fn budget(self, bytes: usize) -> Self {
        Self {
            budget: bytes,
            ..self
        }
    }
}

/// Checks that `t` has `shape`.
pub(super) fn check_shape(t: &DeviceTensor, what: &str, shape: &[usize]) -> Result<()> {
    if t.shape() != shape {
        return Err(XentError::InvalidShape(format!(
            "linear_cross_entropy: expected {what} of shape {shape:?}, got {:?}",
            t.shape()
        )));
    }
    Ok(())
}

/// Checks that no gradient shares a buffer with an input: a buffer bound for reading and for
/// writing in one dispatch is a usage conflict.
pub(super) fn check_apart(inputs: [Option<&DeviceTensor>; 3], grads: Option<Grads>) -> Result<()> {
    if let Some((dx, dw, db)) = grads {
        for g in [Some(dx), Some(dw), db].into_iter().flatten() {
            if inputs.iter().flatten().any(|i| i.buffer() == g.buffer()) {
                return Err(XentError::InvalidArgument(
                    "linear_cross_entropy: a gradient shares a buffer with an input; give it a buffer of its own".into(),
                ));
            }
        }
    }
    Ok(())
}

/// A gradient tensor: f32 of `shape`, where it lies.
pub(super) fn grad_at(t: &DeviceTensor, what: &str, shape: &[usize]) -> Result<At> {
    check_shape(t, what, shape)?;
    if t.dtype() != DType::F32 {
        return Err(XentError::Unsupported(format!(
            "linear_cross_entropy writes f32 gradients; {what} is {:?}",
            t.dtype()
        )));
    }
    Ok((t.buffer().clone(), t.offset() as usize / 4))
}

/// An input tensor as the products read it: f32 where it lies, or a 16-bit one widened
/// into an f32 copy of ours at the start of every run (`prelude`), in pieces that fit
/// one binding.
pub(super) fn f32_view(
    ctx: &Context,
    t: &DeviceTensor,
    what: &str,
    shape: &[usize],
    prelude: &mut Program,
) -> Result<At> {
    check_shape(t, what, shape)?;
    let half = match t.dtype().float() {
        Some(Float::F32) => return Ok((t.buffer().clone(), t.offset() as usize / 4)),
        Some(half) => half,
        None => {
            return Err(XentError::Unsupported(format!(
                "linear_cross_entropy takes f32, f16 or bf16 {what}, got {:?}",
                t.dtype()
            )))
        }
    };
    let n = t.len();
    let wide = output(ctx, what, n)?;
    // Piece starts keep both bindings' offsets (2 and 4 bytes an element) aligned.
    let unit = ctx.limits().min_storage_buffer_offset_alignment as usize / 2;
    let max = ctx.max_binding_bytes() as usize / 4;
    for piece in aligned_pieces(n, max, unit) {
        let src = Bound {
            buffer: t.buffer().clone(),
            offset: t.offset() + (piece.start * 2) as u64,
            size: (piece.len().div_ceil(2) * 4) as u64,
        };
        let dst = Bound {
            buffer: wide.clone(),
            offset: (piece.start * 4) as u64,
            size: (piece.len() * 4) as u64,
        };
        push_widen(ctx, prelude, &src, &dst, piece.len(), half)?;
    }
    Ok((wide, 0))
}

/// The call's tensors, checked, as the chunks take them.
fn device_tensors<'a>(
    ctx: &Context,
    call: &DeviceLinear<'a>,
    p: &LinearProblem,
    prelude: &mut Program,
) -> Result<Tensors<'a>> {
    let (weight_shape, bias_shape) = ([p.classes, p.features], [p.classes]);
    let operand = |(buffer, offset): At| Operand {
        buffer,
        offset,
        major: p.features,
        step: 1,
    };
    let grads = match call.grads()? {
        Some((dx, dw, db)) => Some((
            grad_at(dx, "grad_input", &p.input_shape())?,
            grad_at(dw, "grad_linear_weight", &weight_shape)?,
            match (db, call.linear_bias) {
                (Some(db), Some(_)) => Some(grad_at(db, "grad_linear_bias", &bias_shape)?),
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
    Ok(Tensors {
        x: operand(f32_view(
            ctx,
            call.input,
            "input",
            &p.input_shape(),
            prelude,
        )?),
        w: operand(f32_view(
            ctx,
            call.linear_weight,
            "linear_weight",
            &weight_shape,
            prelude,
        )?),
        bias: match call.linear_bias {
            Some(b) => Some(f32_view(ctx, b, "linear_bias", &bias_shape, prelude)?),
            None => None,
        },
        targets: ChunkTargets::Classes(call.target),
        grads,
        budget: call.budget,
        lse: call.lse,
    })
}

pub(crate) fn build_linear_device(ctx: &Context, call: DeviceLinear) -> Result<PreparedLinear> {
    let opts = &call.options;
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
    let inputs = [Some(call.input), Some(call.linear_weight), call.linear_bias];
    check_apart(inputs, call.grads()?)?;
    let target_shape = call.target.shape();
    let len = p.rows * p.classes;
    check_loss_shapes(
        Loss::CrossEntropy,
        &p.logits_shape(),
        len,
        target_shape,
        false,
        opts,
    )?;
    let (program, built) = (|| {
        let mut program = Program::default();
        let tensors = device_tensors(ctx, &call, &p, &mut program)?;
        let mut built = build_linear_chunks(ctx, &tensors, &p, opts)?;
        program.append(std::mem::take(&mut built.program));
        Ok((program, built))
    })()?;
    let loss_shape = match opts.reduction {
        Reduction::None => target_shape.to_vec(),
        _ => vec![],
    };
    let loss_len = match opts.reduction {
        Reduction::None => p.rows,
        _ => 1,
    };
    // The loss, the lse, then each chunk's target check.
    let mut reads = vec![(built.loss.clone(), loss_len)];
    reads.extend(built.lse.clone().map(|lse| (lse, p.rows)));
    let flags: Vec<_> = built
        .chunks
        .iter()
        .filter_map(|(step, _)| step.error_flag())
        .map(|flag| (flag.clone(), 4))
        .collect();
    let checks = flags.len();
    reads.extend(flags);
    let reads = reads
        .into_iter()
        .map(|(b, len)| {
            let staging = staging_for(ctx, &b, 0, (len.max(1) * 4) as u64);
            (b, staging)
        })
        .collect();
    Ok(PreparedLinear {
        ctx: ctx.clone(),
        program,
        built,
        problem: p,
        reduction: opts.reduction,
        divisor: 1.0,
        loss_shape,
        reads,
        checks,
        grads: None,
        lse: call.lse,
        target_shape: target_shape.to_vec(),
        started: false.into(),
        timestamps: timestamp_queries(ctx),
        lock: Default::default(),
    })
}
