//! log_softmax and softmax, forward and backward, over vocabulary shards `[rows, Cs_k]` (the
//! class axis last, classes in shard order) on one or more contexts. Each shard runs the
//! split-row kernels of shaders/softmax.wgsl in two passes, its rows cut into segments of its
//! own: the first writes each segment's partial, (m, s) forward or (Σ, 0) backward; those are
//! read back, merged per row in segment then shard order on the host (f64), and written back
//! as each row's merged statistic at its first slot, with slots that add nothing after it:
//! (M, 0) forward, (0, 0) backward. The second pass then writes the shard's output.

use super::SoftmaxChunk;
use crate::error::{Result, XentError};
use crate::geometry::{chunks, rows};
use crate::gpu::kernels::Entry;
use crate::gpu::ops::softmax::push_softmax;
use crate::gpu::runtime::buffers::{output, upload};
use crate::gpu::runtime::context::Context;
use crate::gpu::runtime::program::run_program;
use crate::gpu::runtime::program::{join, Program};
use crate::gpu::runtime::readback::staging_for;
use crate::gpu::runtime::readback::Staging;
use crate::gpu::runtime::run_lock::run_scoped;
use crate::gpu::runtime::scope::build_each;
use crate::layout::RowLayout;
use crate::options::{Output, Tensor};
use crate::shard::{run_steps, Lse, ShardStep};

/// One shard's two passes, built.
struct ShardPasses {
    ctx: Context,
    first: Program,
    second: Program,
    /// Each chunk of rows' partials `[rows, segments]` vec2, its rows, and its staging.
    stats: Vec<(wgpu::Buffer, usize, Staging)>,
    outputs: Vec<(wgpu::Buffer, Staging)>,
    segments: usize,
    shape: Vec<usize>,
    /// Forward ((m, s) merged as log-sum-exp states) or backward (Σ summed).
    forward: bool,
}

/// A row's statistic: forward (m, s), backward (Σ, 0).
type Stat = (f64, f64);

fn build_softmax_shard(
    ctx: &Context,
    entry: Entry,
    x: Tensor<f32>,
    gy: Option<Tensor<f32>>,
) -> Result<ShardPasses> {
    let &[n, cs] = x.shape else {
        return Err(XentError::InvalidShape(format!(
            "a shard is [rows, Cs], got {:?}",
            x.shape
        )));
    };
    x.check_len("shard")?;
    if let Some(g) = gy {
        g.check_len("grad_out")?;
        if g.shape != x.shape {
            return Err(XentError::ShapeMismatch {
                input: x.shape.to_vec(),
                target: g.shape.to_vec(),
            });
        }
    }
    let layout = RowLayout {
        outer: n,
        classes: cs,
        inner: 1,
    };
    let mut walk = rows::plan(&layout, &ctx.walk_tuning(), false);
    // Always the split kernels: one segment a row where the walk would not split it.
    if walk.split.segments == 1 {
        walk.split.len = (cs as u32).next_multiple_of(4);
    }
    walk.lanes = ctx.workgroup_size();
    let pieces = match layout.is_empty() {
        true => vec![],
        false => chunks::shard_plan(&layout, &walk.split, ctx.max_binding_bytes())?,
    };
    let k = walk.split.segments as usize;
    let (mut first, mut second) = (Program::default(), Program::default());
    let (mut outputs, mut stats) = (vec![], vec![]);
    for chunk in &pieces {
        let elems = chunk.elems(&layout, &walk.split);
        let input = upload(ctx, "softmax shard x", &x.data[elems.clone()])?;
        let upstream = match gy {
            Some(g) => upload(ctx, "softmax shard gy", &g.data[elems.clone()])?,
            None => upload::<f32>(ctx, "unused", &[])?,
        };
        if chunk.seg_first == 0 {
            let rows = chunk.rows(&layout).len();
            let buffer = output(ctx, "softmax shard partials", 2 * rows * k)?;
            let staging = staging_for(ctx, &buffer, 0, (8 * rows * k) as u64);
            stats.push((buffer, rows, staging));
        }
        let part = SoftmaxChunk {
            layout: chunk.layout(&layout, &walk.split),
            walk,
            seg_first: chunk.seg_first,
            stats: &stats.last().expect("a row's first chunk comes first").0,
            split_always: true,
        };
        let kind = ctx.variant(crate::options::Float::F32, [input.size()]);
        let passes = (&mut first, &mut second);
        let output = push_softmax(ctx, passes, entry, kind, &part, &input, &upstream)?;
        let staging = staging_for(ctx, &output, 0, elems.len() as u64 * 4);
        outputs.push((output, staging));
    }
    Ok(ShardPasses {
        ctx: ctx.clone(),
        first,
        second,
        stats,
        outputs,
        segments: k,
        shape: vec![n, cs],
        forward: matches!(entry, Entry::LogSoftmax | Entry::Softmax),
    })
}

impl ShardPasses {
    /// Runs the first pass: each row's statistic over the shard, its segments merged in order.
    async fn partials_held(&self) -> Result<Vec<Stat>> {
        let reads: Vec<_> = self.stats.iter().map(|(b, _, s)| (b, 0, s)).collect();
        let run = run_program(&self.ctx, &self.first, &reads, None);
        let (planes, _) = run_scoped(&self.ctx, run).await?;
        let k = self.segments;
        let mut out = vec![];
        for ((_, rows, _), words) in self.stats.iter().zip(&planes) {
            for r in 0..*rows {
                let seg = |j: usize| {
                    (
                        words[2 * (r * k + j)] as f64,
                        words[2 * (r * k + j) + 1] as f64,
                    )
                };
                out.push((0..k).map(seg).fold(self.empty(), |a, b| self.merge(a, b)));
            }
        }
        Ok(out)
    }

    /// Writes every row's merged statistic and runs the second pass: the shard's output.
    async fn finish(&self, merged: &[Stat]) -> Result<Output> {
        let (k, forward) = (self.segments, self.forward);
        let mut at = 0;
        for (buffer, rows, _) in &self.stats {
            let mut words = vec![0f32; 2 * rows * k];
            for (r, &(a, b)) in merged[at..at + rows].iter().enumerate() {
                let rest = if forward { a as f32 } else { 0.0 };
                for j in 0..k {
                    words[2 * (r * k + j)] = if j == 0 { a as f32 } else { rest };
                }
                words[2 * r * k + 1] = b as f32;
            }
            self.ctx
                .shared
                .queue
                .write_buffer(buffer, 0, bytemuck::cast_slice(&words));
            at += rows;
        }
        let reads: Vec<_> = self.outputs.iter().map(|(b, s)| (b, 0, s)).collect();
        let run = run_program(&self.ctx, &self.second, &reads, None);
        let (parts, _) = run_scoped(&self.ctx, run).await?;
        Ok(Output {
            data: join(parts),
            shape: self.shape.clone(),
        })
    }
}

impl ShardStep for ShardPasses {
    type Stat = Stat;
    type Grad = Output;

    async fn partials(&self) -> Result<Vec<Stat>> {
        self.partials_held().await
    }

    async fn grad(&self, merged: &[Stat]) -> Result<Output> {
        self.finish(merged).await
    }

    fn empty(&self) -> Stat {
        match self.forward {
            true => (Lse::EMPTY.m, Lse::EMPTY.s),
            // The neutral element of f64's sum.
            false => (-0.0, 0.0),
        }
    }

    fn merge(&self, (a, b): Stat, (c, d): Stat) -> Stat {
        match self.forward {
            true => {
                let st = Lse { m: a, s: b }.merge(Lse { m: c, s: d });
                (st.m, st.s)
            }
            false => (a + c, 0.0),
        }
    }
}

/// `entry` over the shards (with the upstream gradient's shards for the backward entries);
/// shard k on `devices[k % devices.len()]`.
pub(crate) async fn run_softmax_sharded(
    devices: &[Context],
    entry: Entry,
    shards: &[Tensor<'_, f32>],
    gy: Option<&[Tensor<'_, f32>]>,
) -> Result<Vec<Output>> {
    if devices.is_empty() || shards.is_empty() {
        return Err(XentError::InvalidArgument(
            "a sharded softmax needs at least one context and one shard".into(),
        ));
    }
    let rows = shards[0].shape.first().copied();
    if shards
        .iter()
        .any(|s| s.shape.len() != 2 || s.shape.first().copied() != rows)
    {
        return Err(XentError::InvalidShape(
            "every shard is [rows, Cs] with the same rows".into(),
        ));
    }
    if gy.is_some_and(|g| g.len() != shards.len()) {
        return Err(XentError::InvalidShape(
            "one upstream gradient shard per shard".into(),
        ));
    }
    let passes = build_each(devices, shards.len(), |k, ctx| {
        build_softmax_shard(ctx, entry, shards[k], gy.map(|g| g[k]))
    })
    .await?;
    let (_, outputs) = run_steps(&passes, true).await?;
    Ok(outputs.unwrap_or_default())
}
