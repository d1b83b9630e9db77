//! The program of one `linear_cross_entropy` over f32 tensors on the device, chunk by chunk
//! (the design: src/gpu/ops/linear/mod.rs). The host API and the device API both build it.

use super::matmul::{Operand, Product};
use crate::error::Result;
use crate::geometry::tiles::row_chunks;
use crate::gpu::kernels::Entry;
use crate::gpu::ops::device::prepare_device_scaled;
use crate::gpu::ops::device::DeviceLoss;
use crate::gpu::ops::linear::matmul::push_matmul;
use crate::gpu::ops::loss::{Loss, PreparedLoss};
use crate::gpu::ops::reduce::{push_reduction, push_sum_into};
use crate::gpu::ops::reduce::{Finish, Part};
use crate::gpu::runtime::buffers::{output, upload};
use crate::gpu::runtime::context::Context;
use crate::gpu::runtime::device_tensor::DeviceTensor;
use crate::gpu::runtime::program::{BufferCopy, Program};
use crate::linear::LinearProblem;
use crate::options::{DType, LossOptions, Reduction};
use std::ops::Range;

/// An f32 tensor on the device: a buffer and the element where it starts.
pub(crate) type At = (wgpu::Buffer, usize);

/// The targets, as the chunks take them.
pub(crate) enum ChunkTargets<'a> {
    /// Class targets `[N]` on the device (i32, u32 or i64), checked by the kernels: each
    /// chunk's rows are copied into a buffer of its own at the start of every run.
    Classes(&'a DeviceTensor),
    /// Probabilities `[N, C]` on the host, uploaded chunk by chunk.
    Probs(&'a [f32]),
}

/// Where a call's tensors lie: the input `[N, D]`, the weight `[C, D]`, the bias `[C]`, and
/// the gradients to write (dX, dW, and db where there is a bias).
pub(crate) struct Tensors<'a> {
    pub x: Operand,
    pub w: Operand,
    pub bias: Option<At>,
    pub targets: ChunkTargets<'a>,
    pub grads: Option<(At, At, Option<At>)>,
    pub budget: usize,
    /// Whether to keep each row's log-sum-exp.
    pub lse: bool,
}

/// What every chunk shares: the logits scratch, a row of ones (db = 1ᵀ·G), the per-row
/// losses and lse gathered for the whole batch, and the chunks' loss options.
struct Shared<'a> {
    scratch: wgpu::Buffer,
    ones: Operand,
    losses: wgpu::Buffer,
    lse: Option<wgpu::Buffer>,
    chunk_opts: LossOptions<'a>,
    grad_output: f32,
}

/// A built call: its program, where its loss lands, and each chunk's device-target flag.
pub(crate) struct Built {
    pub program: Program,
    /// The reduced loss (one f32), or each row's (`[N]`) for `none`.
    pub loss: wgpu::Buffer,
    /// Each chunk of class targets: its loss call (which holds its flag) and its first row.
    pub chunks: Vec<(PreparedLoss, usize)>,
    /// Each row's log-sum-exp `[N]`, when asked for.
    pub lse: Option<wgpu::Buffer>,
}

/// Rows per chunk: within the budget, and within one binding of logits.
pub(crate) fn linear_chunk_rows(ctx: &Context, p: &LinearProblem, budget: usize) -> Result<usize> {
    // The loss binds the chunk's logits padded to a whole 32-byte group.
    let room = (ctx.max_binding_bytes() as usize).saturating_sub(32) / 4;
    if p.classes > room {
        return Err(crate::XentError::Unsupported(format!(
            "linear_cross_entropy: one row of {} logits needs {} bytes, past one binding ({} bytes)",
            p.classes,
            p.classes * 4,
            ctx.max_binding_bytes()
        )));
    }
    Ok(p.chunk_rows(budget).min(room / p.classes.max(1)).max(1))
}

/// For a mean over class targets D first (`push_shared_den`); then for each chunk, in
/// order: the logits into the scratch, the fused loss and its gradient in place (sum or
/// none, divided by that D, or by N for a mean over probabilities), then the chunk's share
/// of the gradients. Then the losses reduced in row order.
pub(crate) fn build_linear_chunks(
    ctx: &Context,
    t: &Tensors,
    p: &LinearProblem,
    opts: &LossOptions,
) -> Result<Built> {
    let rows = linear_chunk_rows(ctx, p, t.budget)?;
    let probs = matches!(t.targets, ChunkTargets::Probs(_));
    let shared = Shared {
        scratch: output(ctx, "linear logits", rows * p.classes)?,
        ones: Operand {
            buffer: upload(ctx, "ones", &vec![1.0f32; rows])?,
            offset: 0,
            major: 0,
            step: 1,
        },
        losses: output(ctx, "linear losses", p.rows.max(1))?,
        lse: match t.lse {
            true => Some(output(ctx, "linear lse", p.rows.max(1))?),
            false => None,
        },
        chunk_opts: LossOptions {
            reduction: match opts.reduction {
                Reduction::None => Reduction::None,
                _ => Reduction::Sum,
            },
            ..*opts
        },
        grad_output: match opts.reduction {
            Reduction::Mean if probs && p.rows > 0 => 1.0 / p.rows as f32,
            _ => 1.0,
        },
    };
    // Each chunk's dispatches that read only its targets and weights come first (see
    // `push_shared_den`), then each chunk's logits, loss and gradients.
    let (mut program, mut bodies) = (Program::default(), Program::default());
    let mut chunks = vec![];
    for span in row_chunks(p.rows, rows) {
        let first = span.start;
        let parts = (&mut program, &mut bodies);
        chunks.push((push_chunk(ctx, parts, t, p, &shared, span)?, first));
    }
    if let (Some(_), Reduction::Mean, false) = (&t.grads, opts.reduction, probs) {
        push_shared_den(ctx, &mut program, &chunks)?;
    }
    program.append(bodies);
    if let (Some(grads), 0) = (&t.grads, p.rows) {
        // No rows: dW and db are still written, as zeros (products with K = 0).
        let ones = (&shared.scratch, &shared.ones);
        push_linear_grads(ctx, &mut program, t, grads, ones, p, 0..0)?;
    }
    let loss = match opts.reduction {
        Reduction::None => shared.losses,
        _ => {
            let finish = match probs {
                true => Finish::Sum,
                false => Finish::of(opts),
            };
            let outputs = den_parts(&chunks);
            let parts: Vec<Part> = outputs
                .iter()
                .map(|(l, d, n)| (l as _, d as _, *n))
                .collect();
            push_reduction(ctx, &mut program, &parts, finish, None)?.value
        }
    };
    Ok(Built {
        program,
        loss,
        // Only class targets have flags to read.
        chunks: chunks.into_iter().filter(|_| !probs).collect(),
        lse: shared.lse,
    })
}

/// One chunk of rows `span`: its logits, its loss and gradient over them (recorded into
/// `program`; the call returned holds its per-row outputs and target flag), the copies of
/// its losses (`none`) and lse out, and its share of the gradients.
fn push_chunk(
    ctx: &Context,
    (targets_only, program): (&mut Program, &mut Program),
    t: &Tensors,
    p: &LinearProblem,
    sh: &Shared,
    span: Range<usize>,
) -> Result<PreparedLoss> {
    let r = span.len();
    push_logits(ctx, program, t, p, &sh.scratch, span.clone())?;
    let logits = DeviceTensor::from_parts(sh.scratch.clone(), vec![r, p.classes], DType::F32);
    let target = chunk_target(ctx, program, &t.targets, p, span.clone())?;
    let mut call = DeviceLoss::new(&logits, &target);
    if t.grads.is_some() {
        call = call.grad_in_place();
    }
    if t.lse {
        call = call.with_lse();
    }
    let loss = Loss::CrossEntropy;
    let mut step = prepare_device_scaled(ctx, loss, call, &sh.chunk_opts, Some(sh.grad_output))?;
    let mut own = step.take_program();
    targets_only.append(own.take_leading(Entry::targets_only));
    program.append(own);
    let copy_rows = |src: &wgpu::Buffer, src_offset: u64, dst: &wgpu::Buffer| BufferCopy {
        src: src.clone(),
        src_offset,
        dst: dst.clone(),
        dst_offset: (span.start * 4) as u64,
        bytes: (r * 4) as u64,
    };
    if sh.chunk_opts.reduction == Reduction::None {
        program.copy_out(copy_rows(&step.row_outputs().0, 0, &sh.losses));
    }
    if let (Some(all), Some(rows_lse)) = (&sh.lse, step.lse()) {
        program.copy_out(copy_rows(rows_lse.buffer(), rows_lse.offset(), all));
    }
    if let Some(grads) = &t.grads {
        let ones = (&sh.scratch, &sh.ones);
        push_linear_grads(ctx, program, t, grads, ones, p, span)?;
    }
    Ok(step)
}

/// `logits = X[rows] · Wᵀ + b` into the scratch.
pub(super) fn push_logits(
    ctx: &Context,
    program: &mut Program,
    t: &Tensors,
    p: &LinearProblem,
    scratch: &wgpu::Buffer,
    rows: Range<usize>,
) -> Result<()> {
    let x = Operand {
        offset: t.x.offset + rows.start * p.features,
        ..t.x.clone()
    };
    let bias = t.bias.as_ref().map(|(b, at)| (b, *at));
    push_matmul(
        ctx,
        program,
        &Product {
            a: &x,
            b: &t.w,
            c: scratch,
            c_offset: 0,
            c_major: p.classes,
            bias,
            dims: [rows.len(), p.classes, p.features],
            alpha: 1.0,
            accumulate: false,
        },
    )
}

/// The chunk's targets: its class targets copied out of the call's on every run, or its
/// probabilities uploaded.
fn chunk_target(
    ctx: &Context,
    program: &mut Program,
    targets: &ChunkTargets,
    p: &LinearProblem,
    rows: Range<usize>,
) -> Result<DeviceTensor> {
    match targets {
        ChunkTargets::Classes(t) => {
            let word = t.dtype().size();
            let buffer = output(ctx, "chunk targets", (rows.len() * word).div_ceil(4))?;
            program.copy_in(BufferCopy {
                src: t.buffer().clone(),
                src_offset: t.offset() + (rows.start * word) as u64,
                dst: buffer.clone(),
                dst_offset: 0,
                bytes: (rows.len() * word) as u64,
            });
            Ok(DeviceTensor::from_parts(
                buffer,
                vec![rows.len()],
                t.dtype(),
            ))
        }
        ChunkTargets::Probs(all) => {
            let span = rows.start * p.classes..rows.end * p.classes;
            let shape = [rows.len(), p.classes];
            DeviceTensor::from_host(ctx, &all[span], &shape, DType::F32)
        }
    }
}

/// A chunk's share of the gradients, from its logits' gradient G in the scratch:
/// `dX[rows] = G · W`, `dW (+)= Gᵀ · X[rows]`, `db (+)= 1ᵀ · G`.
pub(super) fn push_linear_grads(
    ctx: &Context,
    program: &mut Program,
    t: &Tensors,
    (dx, dw, db): &(At, At, Option<At>),
    (scratch, ones): (&wgpu::Buffer, &Operand),
    p: &LinearProblem,
    rows: Range<usize>,
) -> Result<()> {
    // The first chunk writes dW and db; the later ones add to them.
    let accumulate = rows.start > 0;
    let (r, c, d) = (rows.len(), p.classes, p.features);
    let g = Operand {
        buffer: scratch.clone(),
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
        ..t.w.clone()
    };
    let x_t = Operand {
        offset: t.x.offset + rows.start * d,
        major: 1,
        step: d,
        ..t.x.clone()
    };
    fn product<'p>(
        (a, b): (&'p Operand, &'p Operand),
        (out, at): &'p At,
        c_major: usize,
        dims: [usize; 3],
        accumulate: bool,
    ) -> Product<'p> {
        Product {
            a,
            b,
            c: out,
            c_offset: *at,
            c_major,
            bias: None,
            dims,
            alpha: 1.0,
            accumulate,
        }
    }
    let dx_rows = (dx.0.clone(), dx.1 + rows.start * d);
    push_matmul(
        ctx,
        program,
        &product((&g, &w_t), &dx_rows, d, [r, d, c], false),
    )?;
    push_matmul(
        ctx,
        program,
        &product((&g_t, &x_t), dw, d, [c, d, r], accumulate),
    )?;
    match db {
        Some(db) => {
            let db_product = product((ones, &g_t), db, c, [1, c, r], accumulate);
            push_matmul(ctx, program, &db_product)
        }
        None => Ok(()),
    }
}

/// A mean's D over all the rows into every chunk's gradient scale, after the chunks'
/// dispatches that read only targets and weights (each one's share of D, its target
/// check, the sums into its scale) and before any chunk's loss: D is reduced from the
/// shares in row order, and every chunk divides by it. So each gradient is PyTorch's
/// `(g/D)·…`, NaN where D = 0, and ignored rows keep theirs.
fn push_shared_den(
    ctx: &Context,
    program: &mut Program,
    chunks: &[(PreparedLoss, usize)],
) -> Result<()> {
    let Some(((first, _), rest)) = chunks.split_first() else {
        return Ok(());
    };
    let outputs = den_parts(chunks);
    let parts: Vec<Part> = outputs
        .iter()
        .map(|(l, d, n)| (l as _, d as _, *n))
        .collect();
    push_reduction(ctx, program, &parts, Finish::Mean, Some(first.scale()))?;
    for (chunk, _) in rest {
        push_sum_into(ctx, program, first.scale(), 1, chunk.scale(), 0)?;
    }
    Ok(())
}

/// Each chunk's per-row losses, mean denominators and rows.
fn den_parts(chunks: &[(PreparedLoss, usize)]) -> Vec<(wgpu::Buffer, wgpu::Buffer, usize)> {
    chunks
        .iter()
        .map(|(c, _)| {
            let (losses, dens) = c.row_outputs();
            (losses, dens, c.rows())
        })
        .collect()
}
