//! Peak host memory of `linear_cross_entropy` forward + backward, where device memory is host
//! memory (lavapipe, llvmpipe).
//!
//! `cargo run --release --example linear_memory -- N D C [BUDGET_MIB]` (default
//! 256 256 128256 64) prints, in MiB:
//! - the `[N, C]` logits the op never holds, the gradients it returns and its budget;
//! - prepared: the peak RSS growth of one `PreparedLinear::run` whose inputs were uploaded
//!   before (as PyTorch's inputs are already in its memory), the gradients' device buffers
//!   made and first written during the run, then read back into new host vectors;
//! - device API: one `PreparedLinear` recorded and submitted, inputs on the device, the
//!   gradients written into device tensors made before (untouched until the run) and left
//!   there: the figure the goal is about;
//! - host API: the same for one `Context::linear_cross_entropy_backward` (uploads included).
//!
//! The peak is VmHWM from /proc/self/status, reset before each call by writing 5 to
//! /proc/self/clear_refs (Linux).

use std::time::Instant;
use wgpu_xent::{
    Context, DType, DeviceLinear, DeviceTensor, Grad, Linear, LinearCall, LossOptions, Target,
    Tensor, XentError,
};

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("a VmRSS/VmHWM line")
}

/// Runs `f` and returns the growth of the peak RSS over the RSS before it, in MiB.
fn peak_growth<T>(f: impl FnOnce() -> T) -> (T, f64) {
    std::fs::write("/proc/self/clear_refs", "5").expect("resetting the peak RSS");
    let before = status_kib("VmRSS:");
    let out = f();
    let peak = status_kib("VmHWM:");
    (out, peak.saturating_sub(before) as f64 / 1024.0)
}

fn main() -> Result<(), wgpu_xent::XentError> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("N D C [BUDGET_MIB] as integers"))
        .collect();
    let [n, d, c, budget] = match args[..] {
        [n, d, c] => [n, d, c, 64],
        [n, d, c, b] => [n, d, c, b],
        [] => [256, 256, 128256, 64],
        _ => panic!("usage: linear_memory N D C [BUDGET_MIB]"),
    };
    let mib = |elems: usize| (elems * 4) as f64 / (1 << 20) as f64;
    let x: Vec<f32> = (0..n * d)
        .map(|i| ((i * 7919) % 1000) as f32 / 5e3)
        .collect();
    let w: Vec<f32> = (0..c * d)
        .map(|i| ((i * 104729) % 1000) as f32 / 5e3)
        .collect();
    let t: Vec<i64> = (0..n).map(|i| ((i * 31) % c) as i64).collect();
    let (x_shape, w_shape, t_shape) = ([n, d], [c, d], [n]);
    let linear =
        Linear::new(Tensor::new(&x, &x_shape), Tensor::new(&w, &w_shape)).budget(budget << 20);
    let target = || Target::I64(Tensor::new(&t, &t_shape));
    let opts = LossOptions::default();
    let ctx = Context::new()?;
    let info = ctx.adapter_info();
    println!("{} ({:?}) at N={n} D={d} C={c}", info.name, info.backend);
    println!(
        "logits never held: {:.0} MiB; gradients returned: {:.0} MiB; budget: {budget} MiB",
        mib(n * c),
        mib(n * d + c * d)
    );
    let call = LinearCall::new(linear, target()).options(opts);
    let prepared = ctx.prepare(&call.grad(Grad::Returned))?;
    settle(&ctx);
    let start = Instant::now();
    let (out, grown) = peak_growth(|| prepared.run());
    let loss = out?.loss.scalar();
    println!(
        "prepared: peak RSS +{grown:.0} MiB, {:.1} s, loss {loss:.6}",
        start.elapsed().as_secs_f64()
    );
    drop(prepared);
    let (loss, grown, secs) = device_api(&ctx, (&x, &w, &t), (n, d, c), budget << 20)?;
    println!("device API: peak RSS +{grown:.0} MiB, {secs:.1} s, loss {loss:.6}");
    let start = Instant::now();
    let (out, grown) = peak_growth(|| ctx.linear_cross_entropy_backward(linear, target(), &opts));
    println!(
        "host API: peak RSS +{grown:.0} MiB, {:.1} s, loss {:.6}",
        start.elapsed().as_secs_f64(),
        out?.loss.scalar()
    );
    Ok(())
}

/// Peak RSS growth of one device call whose inputs are uploaded before and whose gradient
/// buffers are made (untouched) before: (loss, MiB, seconds).
fn device_api(
    ctx: &Context,
    (x, w, t): (&[f32], &[f32], &[i64]),
    (n, d, c): (usize, usize, usize),
    budget: usize,
) -> Result<(f32, f64, f64), XentError> {
    let x = DeviceTensor::from_host(ctx, x, &[n, d], DType::F32)?;
    let w = DeviceTensor::from_host(ctx, w, &[c, d], DType::F32)?;
    let t = DeviceTensor::from_host(ctx, t, &[n], DType::I64)?;
    let grad = |shape: &[usize]| -> Result<DeviceTensor, XentError> {
        let buffer = ctx.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some("grad"),
            size: (shape.iter().product::<usize>() * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        DeviceTensor::from_buffer(ctx, &buffer, 0, shape, DType::F32)
    };
    let (dx, dw) = (grad(&[n, d])?, grad(&[c, d])?);
    let grads = [&dx, &dw];
    let call = DeviceLinear::new(&x, &w, &t)
        .grad(Grad::Into(&grads))
        .budget(budget);
    let step = ctx.prepare(&call)?;
    settle(ctx);
    let start = Instant::now();
    let (loss, grown) = peak_growth(|| {
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        step.record(&mut encoder);
        ctx.queue().submit([encoder.finish()]);
        step.read_loss()
    });
    Ok((loss?.scalar(), grown, start.elapsed().as_secs_f64()))
}

/// Waits for an empty submission: wgpu copies buffers made mapped (the uploads) into device
/// memory at the next submission, which would otherwise land inside the measured call.
fn settle(ctx: &Context) {
    let index = ctx.queue().submit([]);
    ctx.device()
        .poll(wgpu::PollType::Wait {
            submission_index: Some(index),
            timeout: None,
        })
        .expect("waiting for the uploads");
}
