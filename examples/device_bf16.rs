//! bf16 logits on the device: the kernels widen them in WGSL and accumulate in f32; the
//! gradient goes into an f32 tensor of the logits' shape, and one scalar comes back.
//!
//!     cargo run --release --example device_bf16

use wgpu_xent::{
    cpu, Context, DType, DeviceTensor, FloatTensor, Grad, LossCall, LossOptions, Target, Tensor,
};

fn main() -> Result<(), wgpu_xent::XentError> {
    let ctx = Context::new()?;
    let (n, c) = (256usize, 32000usize);
    // bf16 bit patterns, as a model that stores bf16 logits would leave them.
    let bits: Vec<u16> = (0..n * c)
        .map(|i| half::bf16::from_f32(((i * 7919) % 1000) as f32 / 125.0 - 4.0).to_bits())
        .collect();
    let targets: Vec<i64> = (0..n as i64).map(|i| (i * 131) % c as i64).collect();
    let logits = DeviceTensor::from_host(&ctx, &bits, &[n, c], DType::BF16)?;
    let target = DeviceTensor::from_host(&ctx, &targets, &[n], DType::I64)?;
    let grad = DeviceTensor::zeros(&ctx, &[n, c])?;
    let step =
        ctx.prepare(&LossCall::cross_entropy(&logits, &target).grad(Grad::Into(&[&grad])))?;

    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    step.record(&mut encoder);
    ctx.queue().submit(Some(encoder.finish()));
    let loss = step.read_loss()?;

    let (shape, tshape) = ([n, c], [n]);
    let reference = cpu::cross_entropy(
        FloatTensor::BF16(Tensor::new(&bits, &shape)),
        Target::I64(Tensor::new(&targets, &tshape)),
        &LossOptions::default(),
    )?;
    println!(
        "bf16 cross_entropy over {n}x{c}: gpu {:.6}, cpu reference {:.6}",
        loss.scalar(),
        reference.scalar()
    );
    println!("gradient (f32) on the device: {} values", grad.len());
    Ok(())
}
