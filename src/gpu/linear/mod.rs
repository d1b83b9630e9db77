//! `linear_cross_entropy` on the GPU, in row chunks whose logits fit `Linear::budget`:
//!
//! for each chunk of R rows, in order, in one submission:
//! 1. `logits = X[chunk] · Wᵀ + b` into one `[R, C]` scratch buffer (shaders/matmul.wgsl);
//! 2. the fused cross_entropy loss and gradient over it, in place (the loss kernels, with
//!    `sum` reduction and upstream gradient 1 / D for `mean`, D the whole batch's weight);
//! 3. `dX[chunk] = G · W`, `dW += Gᵀ · X[chunk]` and `db += 1ᵀ · G`, each C element owned
//!    by one invocation and summed over the chunks in order: deterministic, no atomics.
//!
//! Operands larger than one binding are bound a window at a time (src/geometry/windows.rs).
//! The `[N, C]` logits never exist: device memory beyond the inputs and gradients is the
//! scratch (at most the budget) and each chunk's small loss buffers. Each chunk's loss (its
//! sum, or its rows' losses) is read back and combined on the host in order.

pub(crate) mod matmul;

use crate::error::{Result, XentError};
use crate::geometry::tiles::row_chunks;
use crate::gpu::context::Context;
use crate::gpu::device_tensor::DeviceTensor;
use crate::gpu::loss::Loss;
use crate::gpu::program::{BufferCopy, Program};
use crate::gpu::readback::Staging;
use crate::gpu::timestamps::Timestamps;
use crate::linear::{Linear, LinearOutput, LinearProblem};
use crate::options::{DType, LossOptions, Output, Reduction, Target};
use crate::problem::{check_loss, Targets, IGNORED};
use crate::DeviceLoss;
use matmul::{Operand, Product};
use std::time::Duration;

pub use matmul::PreparedMatmul;

/// The device buffers of one call: inputs, the logits scratch, gradients and losses.
struct Buffers {
    x: Operand,
    w: Operand,
    bias: Option<wgpu::Buffer>,
    ones: Operand,
    scratch: wgpu::Buffer,
    losses: wgpu::Buffer,
    grads: Option<[wgpu::Buffer; 3]>,
    /// Rows per chunk: within the budget, and within one binding of logits.
    chunk_rows: usize,
}

/// A `linear_cross_entropy` built once, run many times.
pub struct PreparedLinear {
    ctx: Context,
    program: Program,
    problem: LinearProblem,
    reduction: Reduction,
    /// The mean's denominator D: the weights of the rows not ignored.
    den: f64,
    out_shape: Vec<usize>,
    /// What each run reads back: losses, then dX, dW and db with the backward.
    reads: Vec<(wgpu::Buffer, Staging)>,
    has_bias: bool,
    timestamps: Option<Timestamps>,
}

impl Context {
    pub(crate) fn build_linear(
        &self,
        linear: Linear,
        target: Target,
        opts: &LossOptions,
        grad: bool,
    ) -> Result<PreparedLinear> {
        let p = linear.problem()?;
        let logits_shape = p.logits_shape();
        let checked = check_loss(
            Loss::CrossEntropy,
            &logits_shape,
            p.rows * p.classes,
            &target,
            opts,
        )?;
        let den = denominator(&checked.targets, opts.weight, p.rows);
        let b = self.linear_buffers(&linear, &p, grad)?;
        let chunks = row_chunks(p.rows, b.chunk_rows);
        let chunk_opts = LossOptions {
            ignore_index: IGNORED as i64,
            reduction: match opts.reduction {
                Reduction::None => Reduction::None,
                _ => Reduction::Sum,
            },
            ..*opts
        };
        let grad_output = match opts.reduction {
            Reduction::Mean if den != 0.0 => (1.0 / den) as f32,
            Reduction::Mean => 0.0,
            _ => 1.0,
        };
        let mut program = Program::default();
        for (i, rows) in chunks.iter().enumerate() {
            let (r0, r) = (rows.start, rows.len());
            crate::gpu::poller::block(self.scoped(async {
                let logits = Product {
                    a: &Operand {
                        offset: r0 * p.features,
                        ..b.x.clone()
                    },
                    b: &b.w,
                    c: &b.scratch,
                    c_offset: 0,
                    c_major: p.classes,
                    bias: b.bias.as_ref(),
                    dims: [r, p.classes, p.features],
                    alpha: 1.0,
                    accumulate: false,
                };
                self.push_matmul(&mut program, &logits)
            }))?;
            let scratch =
                DeviceTensor::from_parts(b.scratch.clone(), vec![r, p.classes], DType::F32);
            let target = match &checked.targets {
                Targets::Classes(t) => {
                    DeviceTensor::from_host(self, &t[rows.clone()], &[r], DType::I32)?
                }
                Targets::Probs(t) => {
                    let span = r0 * p.classes..(r0 + r) * p.classes;
                    DeviceTensor::from_host(self, &t[span], &[r, p.classes], DType::F32)?
                }
            };
            let call = DeviceLoss::new(&scratch, &target);
            let call = if grad { call.grad_in_place() } else { call };
            let step =
                self.prepare_device_scaled(Loss::CrossEntropy, call, &chunk_opts, grad_output)?;
            let loss = step.loss();
            program.append(step.into_program());
            let (at, bytes) = match opts.reduction {
                Reduction::None => (r0 * 4, r * 4),
                _ => (i * 4, 4),
            };
            program.copy_out(BufferCopy {
                src: loss.buffer().clone(),
                src_offset: loss.offset(),
                dst: b.losses.clone(),
                dst_offset: at as u64,
                bytes: bytes as u64,
            });
            if let Some(grads) = &b.grads {
                crate::gpu::poller::block(self.scoped(async {
                    self.push_linear_grads(&mut program, &b, grads, &p, rows.clone(), i > 0)
                }))?;
            }
        }
        let loss_len = match opts.reduction {
            Reduction::None => p.rows,
            _ => chunks.len(),
        };
        let mut reads = vec![(
            b.losses.clone(),
            self.staging_for(&b.losses, 0, (loss_len.max(1) * 4) as u64),
        )];
        if let Some(grads) = &b.grads {
            let lens = [p.rows * p.features, p.classes * p.features, p.classes];
            for (g, len) in grads.iter().zip(lens) {
                reads.push((g.clone(), self.staging_for(g, 0, (len.max(1) * 4) as u64)));
            }
        }
        Ok(PreparedLinear {
            ctx: self.clone(),
            program,
            problem: p,
            reduction: opts.reduction,
            den,
            out_shape: checked.out_shape,
            reads,
            has_bias: b.bias.is_some(),
            timestamps: self.timestamp_queries(),
        })
    }

    /// Uploads the inputs (16-bit ones widened to f32 on the host) and makes the scratch,
    /// loss and gradient buffers.
    fn linear_buffers(&self, linear: &Linear, p: &LinearProblem, grad: bool) -> Result<Buffers> {
        let max = self.max_binding_bytes() as usize;
        // The loss runs over a chunk's logits in one binding; the products cut the rest.
        // (The loss binds it padded to a whole 32-byte group.)
        let room = max.saturating_sub(32) / 4;
        if p.classes > room {
            return Err(XentError::Unsupported(format!(
                "linear_cross_entropy: one row of {} logits needs {} bytes, past one binding ({max} bytes)",
                p.classes,
                p.classes * 4
            )));
        }
        let operand = |buffer, major| Operand {
            buffer,
            offset: 0,
            major,
            step: 1,
        };
        let x = operand(
            self.upload("linear input", &linear.input.to_f32())?,
            p.features,
        );
        let w = operand(
            self.upload("linear weight", &linear.linear_weight.to_f32())?,
            p.features,
        );
        let bias = match &linear.linear_bias {
            Some(b) => Some(self.upload("linear bias", &b.to_f32())?),
            None => None,
        };
        let rows = p
            .chunk_rows(linear.budget)
            .min((room / p.classes.max(1)).max(1));
        // db = 1ᵀ·G as a one-row product: a row of ones, as long as a chunk.
        let ones = Operand {
            buffer: self.upload("ones", &vec![1.0f32; rows])?,
            offset: 0,
            major: 0,
            step: 1,
        };
        let scratch = self.output("linear logits", rows * p.classes)?;
        let losses = self.output("linear losses", p.rows.max(1))?;
        let grads = match grad {
            true => Some([
                self.host_output("grad input", p.rows * p.features)?,
                self.host_output("grad linear weight", p.classes * p.features)?,
                self.host_output("grad linear bias", p.classes)?,
            ]),
            false => None,
        };
        Ok(Buffers {
            x,
            w,
            bias,
            ones,
            scratch,
            losses,
            grads,
            chunk_rows: rows,
        })
    }

    /// A chunk's share of the three gradients, from its logits' gradient G in the scratch:
    /// `dX[rows] = G · W`, `dW (+)= Gᵀ · X[rows]`, `db (+)= 1ᵀ · G`.
    fn push_linear_grads(
        &self,
        program: &mut Program,
        b: &Buffers,
        [dx, dw, db]: &[wgpu::Buffer; 3],
        p: &LinearProblem,
        rows: std::ops::Range<usize>,
        accumulate: bool,
    ) -> Result<()> {
        let (r, c, d) = (rows.len(), p.classes, p.features);
        let g = Operand {
            buffer: b.scratch.clone(),
            offset: 0,
            major: c,
            step: 1,
        };
        let g_t = Operand {
            major: 1,
            step: c,
            ..g.clone()
        };
        let w_t = Operand {
            major: 1,
            step: d,
            ..b.w.clone()
        };
        let x_t = Operand {
            offset: rows.start * d,
            major: 1,
            step: d,
            ..b.x.clone()
        };
        let product = |a, bb, out, c_offset, c_major, dims, accumulate| Product {
            a,
            b: bb,
            c: out,
            c_offset,
            c_major,
            bias: None,
            dims,
            alpha: 1.0,
            accumulate,
        };
        self.push_matmul(
            program,
            &product(&g, &w_t, dx, rows.start * d, d, [r, d, c], false),
        )?;
        self.push_matmul(
            program,
            &product(&g_t, &x_t, dw, 0, d, [c, d, r], accumulate),
        )?;
        self.push_matmul(
            program,
            &product(&b.ones, &g_t, db, 0, c, [1, c, r], accumulate),
        )
    }
}

/// The mean's denominator: the class weights (1 without) of the rows not ignored, or the
/// rows themselves for probability targets.
fn denominator(targets: &Targets, weight: Option<&[f32]>, rows: usize) -> f64 {
    match targets {
        Targets::Probs(_) => rows as f64,
        Targets::Classes(t) => t
            .iter()
            .filter(|&&c| c != IGNORED)
            .map(|&c| weight.map_or(1.0, |w| w[c as usize] as f64))
            .sum(),
    }
}

impl PreparedLinear {
    /// Runs the call and reads the loss (and gradients) back.
    pub fn run(&self) -> Result<LinearOutput> {
        Ok(self.run_inner(false)?.0)
    }

    /// As `run`, with the GPU time of the call where the adapter has timestamps.
    pub fn run_timed(&self) -> Result<(LinearOutput, Option<Duration>)> {
        self.run_inner(true)
    }

    fn run_inner(&self, timed: bool) -> Result<(LinearOutput, Option<Duration>)> {
        let p = &self.problem;
        let reads: Vec<_> = self.reads.iter().map(|(b, s)| (b, 0, s)).collect();
        let timestamps = self.timestamps.as_ref().filter(|_| timed);
        let run = self.ctx.run_program(&self.program, &reads, timestamps);
        let (parts, elapsed) = crate::gpu::poller::block(self.ctx.scoped(run))?;
        let mut parts = parts.into_iter();
        let losses = parts.next().unwrap_or_default();
        let total = || -> f64 { losses.iter().map(|&v| v as f64).sum() };
        let data = match self.reduction {
            Reduction::None => losses[..p.rows].to_vec(),
            Reduction::Sum => vec![total() as f32],
            Reduction::Mean => vec![(total() / self.den) as f32],
        };
        let loss = Output {
            data,
            shape: match self.reduction {
                Reduction::None => self.out_shape.clone(),
                _ => vec![],
            },
        };
        let mut take = |len: usize, shape: Vec<usize>| {
            parts.next().map(|mut v| {
                v.truncate(len);
                Output { data: v, shape }
            })
        };
        let grad_input = take(p.rows * p.features, p.input_shape());
        let grad_linear_weight = take(p.classes * p.features, vec![p.classes, p.features]);
        let grad_linear_bias = take(p.classes, vec![p.classes]).filter(|_| self.has_bias);
        Ok((
            LinearOutput {
                loss,
                grad_input,
                grad_linear_weight,
                grad_linear_bias,
            },
            elapsed,
        ))
    }
}
