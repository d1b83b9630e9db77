//! Quickstart: a cross-entropy loss over 1024 × 32000 random logits (125 MiB) on the GPU,
//! checked against the f64 CPU reference.
//!
//!     cargo run --release --example quickstart

use std::time::Instant;
use wgpu_xent::{cpu, Context, LossOptions, Target, Tensor};

fn main() -> Result<(), wgpu_xent::XentError> {
    let (n, c) = (1024, 32000);
    // Deterministic pseudo-random logits and targets.
    let mut state = 0x2545f4914f6cdd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let logits: Vec<f32> = (0..n * c)
        .map(|_| (next() >> 40) as f32 / (1u64 << 24) as f32 * 8.0 - 4.0)
        .collect();
    let targets: Vec<i64> = (0..n).map(|_| (next() % c as u64) as i64).collect();
    let (shape, tshape) = ([n, c], [n]);
    let input = Tensor::new(&logits, &shape);
    let target = Target::I64(Tensor::new(&targets, &tshape));
    let opts = LossOptions::default();

    let ctx = Context::new()?;
    let info = ctx.adapter_info();
    println!(
        "adapter: {} ({:?}, {:?})",
        info.name, info.backend, info.device_type
    );

    let t = Instant::now();
    let gpu = ctx.cross_entropy(input, target, &opts)?;
    let gpu_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let reference = cpu::cross_entropy(input, target, &opts)?;
    let cpu_ms = t.elapsed().as_secs_f64() * 1e3;

    println!("cross_entropy over {n}x{c} logits (mean):");
    println!(
        "  gpu           {:.7}  ({gpu_ms:.1} ms, upload included)",
        gpu.scalar()
    );
    println!(
        "  cpu reference {:.7}  ({cpu_ms:.1} ms)",
        reference.scalar()
    );
    let rel = ((gpu.scalar() - reference.scalar()) / reference.scalar()).abs();
    println!("  relative difference {rel:.2e}");
    if rel > 1e-5 {
        return Err(wgpu_xent::XentError::InvalidArgument(format!(
            "GPU and CPU disagree: relative difference {rel:e}"
        )));
    }
    Ok(())
}
