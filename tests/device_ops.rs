//! The device-resident ops against the CPU reference: softmax and nll_loss on device tensors,
//! bf16 logits, class weights as a device tensor and the lse kept on the device, and outputs
//! in a 16-bit dtype rounded exactly as the `half` crate rounds.

mod common;

use common::{assert_close, assert_loss_and_grad, widen};
use wgpu_xent::{
    cpu, Context, ContextOptions, DType, DeviceTensor, Grad, LossCall, LossOptions, Reduction,
    SoftmaxCall, Target, Tensor,
};

/// The logits of tests/device.rs's model: ((i·7919) mod 1000) / 100 - 5, exact in f32.
fn model_logits(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 / 100.0 - 5.0)
        .collect()
}

#[test]
fn bf16_logits_and_u32_targets_on_the_device() {
    let ctx = Context::with_options(wgpu_xent::ContextOptions::from_env().unwrap()).unwrap();
    let (n, c) = (9usize, 130usize);
    let x = model_logits(n * c);
    let bits: Vec<u16> = x
        .iter()
        .map(|&v| half::bf16::from_f32(v).to_bits())
        .collect();
    let t: Vec<u32> = (0..n as u32).map(|i| (i * 17) % c as u32).collect();
    let logits = DeviceTensor::from_host(&ctx, &bits, &[n, c], DType::BF16).unwrap();
    let target = DeviceTensor::from_host(&ctx, &t, &[n], DType::U32).unwrap();
    let grad = DeviceTensor::zeros(&ctx, &[n, c]).unwrap();
    let step = ctx
        .prepare(&LossCall::cross_entropy(&logits, &target).grad(Grad::Into(&[&grad])))
        .unwrap();
    let (out, _) = step.run_timed().unwrap();
    let (shape, tshape) = ([n, c], [n]);
    let reference = cpu::cross_entropy_backward(
        wgpu_xent::FloatTensor::BF16(Tensor::new(&bits, &shape)),
        Target::U32(Tensor::new(&t, &tshape)),
        &Default::default(),
        &Default::default(),
    )
    .unwrap();
    assert_loss_and_grad(
        "bf16",
        (&out.loss.data, &grad.read_f32(&ctx).unwrap()),
        reference,
        (1e-5, 1e-5),
        (1e-6, 1e-4),
    );
}

/// log_softmax, softmax and nll_loss on device tensors agree with the CPU reference.
#[test]
fn softmax_and_nll_on_device_tensors() {
    let ctx = Context::with_options(wgpu_xent::ContextOptions::from_env().unwrap()).unwrap();
    let (n, c) = (13usize, 67usize);
    let x = model_logits(n * c);
    let (shape, tshape) = ([n, c], [n]);
    let logits = DeviceTensor::from_host(&ctx, &x, &shape, DType::F32).unwrap();
    for log in [true, false] {
        let call = match log {
            true => SoftmaxCall::log_softmax(&logits, -1),
            false => SoftmaxCall::softmax(&logits, -1),
        };
        let p = ctx.prepare(&call).unwrap();
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        p.record(&mut encoder);
        ctx.queue().submit(Some(encoder.finish()));
        let out = p.output().read_f32(&ctx).unwrap();
        let reference = if log {
            cpu::log_softmax(Tensor::new(&x, &shape), -1).unwrap()
        } else {
            cpu::softmax(Tensor::new(&x, &shape), -1).unwrap()
        };
        let expect = widen(&reference.data);
        assert_close("device softmax", &out, &expect, 1e-5, 1e-5);
    }
    let t: Vec<i32> = (0..n as i32).map(|i| (i * 5) % c as i32).collect();
    let target = DeviceTensor::from_host(&ctx, &t, &tshape, DType::I32).unwrap();
    let grad = DeviceTensor::zeros(&ctx, &shape).unwrap();
    let step = ctx
        .prepare(&LossCall::nll_loss(&logits, &target).grad(Grad::Into(&[&grad])))
        .unwrap();
    let (out, _) = step.run_timed().unwrap();
    let reference = cpu::nll_loss_backward(
        Tensor::new(&x, &shape),
        Target::I32(Tensor::new(&t, &tshape)),
        &Default::default(),
        &Default::default(),
    )
    .unwrap();
    assert_loss_and_grad(
        "device nll",
        (&out.loss.data, &grad.read_f32(&ctx).unwrap()),
        reference,
        (1e-6, 1e-6),
        (1e-7, 1e-6),
    );
}

/// Outputs in the input's 16-bit dtype: rounded to nearest even exactly as the `half` crate
/// rounds, for softmax outputs and for the gradient, in place too.
#[test]
fn half_outputs_are_rounded_to_nearest_even() {
    use wgpu_xent::DType;
    let ctx = Context::with_options(wgpu_xent::ContextOptions::from_env().unwrap()).unwrap();
    let (n, c) = (6usize, 50usize);
    let x = model_logits(n * c);
    let (shape, tshape) = ([n, c], [n]);
    for (dtype, ddt) in [(DType::F16, DType::F16), (DType::BF16, DType::BF16)] {
        let logits = DeviceTensor::from_host(&ctx, &x, &shape, DType::F32).unwrap();
        for log in [true, false] {
            let call = match log {
                true => SoftmaxCall::log_softmax(&logits, -1),
                false => SoftmaxCall::softmax(&logits, -1),
            };
            let p = ctx.prepare(&call.output(dtype)).unwrap();
            let mut encoder = ctx.device().create_command_encoder(&Default::default());
            p.record(&mut encoder);
            ctx.queue().submit(Some(encoder.finish()));
            let packed = p.output();
            assert_eq!(packed.dtype(), ddt);
            let bits = packed.read_u16(&ctx).unwrap();
            // The same kernel's f32 output, rounded on the host.
            let f32_out = if log {
                ctx.log_softmax(Tensor::new(&x, &shape), -1).unwrap()
            } else {
                ctx.softmax(Tensor::new(&x, &shape), -1).unwrap()
            };
            let expect: Vec<u16> = f32_out.data.iter().map(|&v| round(dtype, v)).collect();
            assert_eq!(bits, expect, "{dtype:?} log={log}");
        }
    }
    // The gradient of bf16 logits, in place: the f32 gradient rounded into the logits.
    let bits: Vec<u16> = x
        .iter()
        .map(|&v| half::bf16::from_f32(v).to_bits())
        .collect();
    let t: Vec<i32> = (0..n as i32).collect();
    let logits = DeviceTensor::from_host(&ctx, &bits, &shape, DType::BF16).unwrap();
    let target = DeviceTensor::from_host(&ctx, &t, &tshape, DType::I32).unwrap();
    let f32_grad = DeviceTensor::zeros(&ctx, &shape).unwrap();
    let step = ctx
        .prepare(&LossCall::cross_entropy(&logits, &target).grad(Grad::Into(&[&f32_grad])))
        .unwrap();
    step.run_timed().unwrap();
    let step = ctx
        .prepare(&LossCall::cross_entropy(&logits, &target).grad(Grad::InPlace))
        .unwrap();
    step.run_timed().unwrap();
    let expect: Vec<u16> = f32_grad
        .read_f32(&ctx)
        .unwrap()
        .iter()
        .map(|&g| round(DType::BF16, g))
        .collect();
    assert_eq!(logits.read_u16(&ctx).unwrap(), expect);
}

fn round(dtype: wgpu_xent::DType, v: f32) -> u16 {
    match dtype {
        wgpu_xent::DType::F16 => half::f16::from_f32(v).to_bits(),
        _ => half::bf16::from_f32(v).to_bits(),
    }
}

/// The packer on edge values (zeros, subnormals, ties, overflow, infinities, NaN) and random
/// bit patterns, against the `half` crate. Each value goes through nll_loss's gradient with
/// weight -v at the target and `sum`, which is exactly v in f32, into a 16-bit tensor.
#[test]
fn packing_matches_the_half_crate_on_edge_values() {
    use wgpu_xent::DType;
    let ctx = Context::with_options(wgpu_xent::ContextOptions::from_env().unwrap()).unwrap();
    let mut values: Vec<f32> = vec![
        0.0,
        -0.0,
        1.0,
        -1.0,
        65504.0,
        65519.0,
        65520.0,
        1e6,
        -1e6,
        f32::INFINITY,
        f32::NEG_INFINITY,
        6.1035156e-5,
        6.097555e-5,
        5.9604645e-8,
        2.9802322e-8,
        2.9802326e-8,
        1e-10,
        1.0009766,
        f32::from_bits(0x3f80_1000), // 1 + 2^-11: a tie in f16
        f32::from_bits(0x3f80_3000), // 1 + 3·2^-11: a tie, rounding up
        3.0e38,
        -3.4028235e38,
        1.1754944e-38,
        1.0e-40,
        f32::NAN,
    ];
    let mut rng = common::Rng(5);
    values.extend((0..40).map(|_| f32::from_bits(rng.next_u64() as u32)));
    let logits = DeviceTensor::from_host(&ctx, &[0f32], &[1, 1], DType::F32).unwrap();
    let target = DeviceTensor::from_host(&ctx, &[0i32], &[1], DType::I32).unwrap();
    for (dtype, ddt) in [(DType::F16, DType::F16), (DType::BF16, DType::BF16)] {
        let grad = DeviceTensor::zeros_of(&ctx, &[1, 1], ddt).unwrap();
        for &v in &values {
            let w = [-v];
            let opts = LossOptions {
                weight: Some(&w),
                reduction: Reduction::Sum,
                ..Default::default()
            };
            let grads = [&grad];
            let call = LossCall::nll_loss(&logits, &target)
                .options(opts)
                .grad(Grad::Into(&grads));
            let step = ctx.prepare(&call).unwrap();
            step.run_timed().unwrap();
            let (got, want) = (grad.read_u16(&ctx).unwrap()[0], round(dtype, v));
            let nan = |b: u16| match dtype {
                DType::F16 => half::f16::from_bits(b).is_nan(),
                _ => half::bf16::from_bits(b).is_nan(),
            };
            assert!(
                got == want || (nan(got) && nan(want)),
                "{dtype:?} {v:e}: got {got:#06x}, want {want:#06x}"
            );
        }
    }
}

/// Class weights as a device tensor, read on every run (W = Σ w for the smoothing term of
/// the gradient included), and each row's lse kept on the device: both equal the host
/// path's, on whole rows and on rows split across workgroups.
#[test]
fn device_weights_and_lse_match_the_cpu_reference() {
    let cases = [
        (37usize, 1001usize, None, Reduction::Mean),
        (3, 20000, Some(64), Reduction::None),
    ];
    for (n, c, min_workgroups, reduction) in cases {
        let ctx = Context::with_options(ContextOptions {
            min_workgroups,
            ..wgpu_xent::ContextOptions::from_env().unwrap()
        })
        .unwrap();
        let x = model_logits(n * c);
        let (shape, tshape) = ([n, c], [n]);
        let t: Vec<i64> = (0..n as i64)
            .map(|i| {
                if i % 4 == 1 {
                    -100
                } else {
                    (i * 97) % c as i64
                }
            })
            .collect();
        let logits = DeviceTensor::from_host(&ctx, &x, &shape, DType::F32).unwrap();
        let target = DeviceTensor::from_host(&ctx, &t, &tshape, DType::I64).unwrap();
        let grad = DeviceTensor::zeros(&ctx, &shape).unwrap();
        let first: Vec<f32> = (0..c).map(|k| 0.5 + (k % 7) as f32 / 4.0).collect();
        let weight = DeviceTensor::from_host(&ctx, &first, &[c], DType::F32).unwrap();
        let opts = LossOptions {
            label_smoothing: 0.2,
            reduction,
            ..Default::default()
        };
        let grads = [&grad];
        let call = LossCall::cross_entropy(&logits, &target)
            .options(opts)
            .device_weight(&weight)
            .grad(Grad::Into(&grads))
            .lse(true);
        let step = ctx.prepare(&call).unwrap();
        // The second set of weights is written into the same buffer between runs.
        let second: Vec<f32> = (0..c).map(|k| 2.0 - (k % 5) as f32 / 3.0).collect();
        for w in [&first, &second] {
            ctx.queue()
                .write_buffer(weight.buffer(), 0, bytemuck::cast_slice(w));
            let (out, _) = step.run_timed().unwrap();
            let host = LossOptions {
                weight: Some(w),
                ..opts
            };
            let what = format!("{n}x{c}");
            let target = || Target::I64(Tensor::new(&t, &tshape));
            let reference = cpu::cross_entropy_backward(
                Tensor::new(&x, &shape),
                target(),
                &host,
                &Default::default(),
            )
            .unwrap();
            assert_loss_and_grad(
                &what,
                (&out.loss.data, &grad.read_f32(&ctx).unwrap()),
                reference,
                (1e-6, 1e-5),
                (1e-8, 1e-4),
            );
            let (_, lse) =
                cpu::cross_entropy_with_lse(Tensor::new(&x, &shape), target(), &host).unwrap();
            let lse_dev = step.lse().expect("asked for the lse");
            assert_eq!(lse_dev.shape(), &tshape);
            let expect = widen(&lse.data);
            assert_close(&what, &lse_dev.read_f32(&ctx).unwrap(), &expect, 1e-5, 1e-6);
        }
    }
}
