//! Loss + gradient latency at training-loop batch sizes, against the adapter's floor.
//!
//! `cargo run --release --example small_batches` prints, per shape, the median of many runs:
//! - floor: one submission that copies one f32 into a mapped buffer and reads it back, the
//!   least any GPU call that returns a value costs on this adapter;
//! - prepared: `PreparedLoss::run_batch` (new logits and targets written, one submission,
//!   loss and gradient read back);
//! - one-shot: `Context::cross_entropy_backward` (uploads and builds everything);
//! - cpu: the crate's f64 reference, `cpu::cross_entropy_backward`;
//!
//! and the dispatches of one prepared run. Also the floor with 1 and 3 dispatches of a
//! kernel that does nothing but one store, recorded before the read. Then 16 async `LossCall` runs (`run_async`) joined
//! on one executor against the same 16 blocking calls one after another, and log_softmax
//! at 1024×32000 returned in a fresh `Vec` against written into a reused slice.

use std::time::{Duration, Instant};
use wgpu_xent::{
    cpu, BackwardOptions, Context, Grad, LossCall, LossOptions, SoftmaxCall, Target, Tensor,
};

const SHAPES: [(usize, usize); 3] = [(64, 10), (1437, 10), (4096, 100)];

fn median(mut f: impl FnMut(), iters: usize) -> Duration {
    for _ in 0..iters / 10 + 1 {
        f();
    }
    let mut times: Vec<Duration> = (0..iters)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[iters / 2]
}

/// One submission that copies one f32 into a mapped buffer and waits for it.
fn floor(ctx: &Context) -> impl FnMut() + '_ {
    let device = ctx.device();
    let src = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("floor src"),
        size: 4,
        usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let dst = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("floor dst"),
        size: 4,
        usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ,
        mapped_at_creation: false,
    });
    move || {
        let mut encoder = device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(&src, 0, &dst, 0, 4);
        let index = ctx.queue().submit([encoder.finish()]);
        dst.slice(..)
            .map_async(wgpu::MapMode::Read, |r| r.expect("maps"));
        device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(index),
                timeout: None,
            })
            .expect("polls");
        dst.unmap();
    }
}

/// As `floor`, with `k` dispatches of a one-workgroup kernel that stores one f32 recorded
/// before the copy: what the dispatches of a call cost before they do any work.
fn dispatch_floor(ctx: &Context, k: usize) -> impl FnMut() + '_ {
    let device = ctx.device();
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("one store"),
        source: wgpu::ShaderSource::Wgsl(
            "@group(0) @binding(0) var<storage, read_write> out: array<f32>;\n\
             @compute @workgroup_size(64) fn main(@builtin(local_invocation_index) i: u32) {\n\
                 if i == 0u { out[0] = out[0] + 1.0; }\n\
             }"
            .into(),
        ),
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("one store"),
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    });
    let out = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("one store out"),
        size: 4,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[wgpu::BindGroupEntry {
            binding: 0,
            resource: out.as_entire_binding(),
        }],
    });
    let dst = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("one store dst"),
        size: 4,
        usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ,
        mapped_at_creation: false,
    });
    move || {
        let mut encoder = device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind, &[]);
            for _ in 0..k {
                pass.dispatch_workgroups(1, 1, 1);
            }
        }
        encoder.copy_buffer_to_buffer(&out, 0, &dst, 0, 4);
        let index = ctx.queue().submit([encoder.finish()]);
        dst.slice(..)
            .map_async(wgpu::MapMode::Read, |r| r.expect("maps"));
        device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(index),
                timeout: None,
            })
            .expect("polls");
        dst.unmap();
    }
}

fn main() -> wgpu_xent::Result<()> {
    let ctx = Context::new()?;
    println!("adapter: {}", ctx.adapter_info().name);
    let floor_time = median(floor(&ctx), 400);
    println!(
        "floor (submit + read one f32): {:.0} µs",
        micros(floor_time)
    );
    for k in [1, 3] {
        println!(
            "floor with {k} one-workgroup dispatch(es) before the read: {:.0} µs",
            micros(median(dispatch_floor(&ctx, k), 400))
        );
    }
    println!("| N×C | dispatches | prepared | one-shot | cpu (f64) | prepared / floor |");
    println!("|---|---|---|---|---|---|");
    let opts = LossOptions::default();
    for (n, c) in SHAPES {
        let logits: Vec<f32> = (0..n * c)
            .map(|i| ((i * 7919) % 1000) as f32 / 250.0)
            .collect();
        let target: Vec<i64> = (0..n).map(|i| ((i * 31) % c) as i64).collect();
        let (shape, rows) = ([n, c], [n]);
        let x = || Tensor::new(&logits, &shape);
        let t = || Target::I64(Tensor::new(&target, &rows));
        let step = ctx.prepare(&LossCall::cross_entropy(x(), t()).grad(Grad::Returned))?;
        let back = BackwardOptions::default();
        let iters = if n * c > 100_000 { 100 } else { 300 };
        let prepared = median(|| drop(step.run_batch(x(), t(), None).unwrap()), iters);
        let one_shot = median(
            || drop(ctx.cross_entropy_backward(x(), t(), &opts, &back).unwrap()),
            iters,
        );
        let cpu = median(
            || drop(cpu::cross_entropy_backward(x(), t(), &opts, &back).unwrap()),
            iters,
        );
        println!(
            "| {n}×{c} | {} | {:.0} µs | {:.0} µs | {:.0} µs | {:.2}× |",
            step.dispatches(),
            micros(prepared),
            micros(one_shot),
            micros(cpu),
            prepared.as_secs_f64() / floor_time.as_secs_f64()
        );
    }
    joined(&ctx)?;
    reused_output(&ctx)?;
    Ok(())
}

/// 16 async calls joined on one executor (they all submit before any waits) against the
/// same calls made one after another.
fn joined(ctx: &Context) -> wgpu_xent::Result<()> {
    let (n, c) = (256, 1000);
    let logits: Vec<f32> = (0..n * c)
        .map(|i| ((i * 7919) % 1000) as f32 / 250.0)
        .collect();
    let target: Vec<i64> = (0..n).map(|i| ((i * 31) % c) as i64).collect();
    let (shape, rows) = ([n, c], [n]);
    let call = || {
        let call = LossCall::cross_entropy(
            Tensor::new(&logits, &shape),
            Target::I64(Tensor::new(&target, &rows)),
        );
        async move { ctx.run_async(&call).await }
    };
    let sequential = median(
        || {
            for _ in 0..16 {
                pollster::block_on(call()).unwrap();
            }
        },
        15,
    );
    let together = median(
        || {
            let calls: Vec<_> = (0..16).map(|_| call()).collect();
            for r in pollster::block_on(futures::future::join_all(calls)) {
                r.unwrap();
            }
        },
        15,
    );
    println!(
        "16 async cross_entropy calls at {n}×{c}: one after another {:.2} ms, joined {:.2} ms ({:.2}×)",
        sequential.as_secs_f64() * 1e3,
        together.as_secs_f64() * 1e3,
        sequential.as_secs_f64() / together.as_secs_f64()
    );
    Ok(())
}

/// log_softmax at 1024×32000, end to end: a fresh `Vec` each call against a reused slice.
fn reused_output(ctx: &Context) -> wgpu_xent::Result<()> {
    let (n, c) = (1024, 32000);
    let x: Vec<f32> = (0..n * c)
        .map(|i| ((i * 7919) % 1000) as f32 / 250.0)
        .collect();
    let shape = [n, c];
    let prepared = ctx.prepare(&SoftmaxCall::log_softmax(Tensor::new(&x, &shape), 1))?;
    let mut out = vec![0.0f32; n * c];
    let fresh = median(|| drop(prepared.run_timed().unwrap()), 15);
    let reused = median(|| prepared.run_into(&mut out).unwrap(), 15);
    println!(
        "log_softmax {n}×{c}, prepared, end to end: fresh Vec {:.1} ms, reused slice {:.1} ms ({:.2}×)",
        fresh.as_secs_f64() * 1e3,
        reused.as_secs_f64() * 1e3,
        fresh.as_secs_f64() / reused.as_secs_f64()
    );
    Ok(())
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
