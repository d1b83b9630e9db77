//! Device tensors in exact-size buffers: the data ends where the buffer ends, inside the last
//! group of four elements the kernels read and write at once. Each case puts its tensor at
//! byte 256 of a buffer whose first 256 bytes are a sentinel, checks the results against the
//! CPU reference, and checks that the sentinel is untouched (the staging copies write only
//! the tensor's own bytes).

mod common;

use common::{assert_close, assert_loss_and_grad, ctx, widen};
use wgpu_xent::{
    cpu, DType, DeviceTensor, Grad, LossCall, LossOptions, SoftmaxCall, Target, Tensor,
};

const AT: u64 = 256;

/// A buffer of exactly `AT` sentinel bytes then `data` (rounded up to whole 4-byte words, as
/// WebGPU binds storage), wrapped as a tensor of `shape` and `dtype` at byte `AT`.
fn exact<T: bytemuck::Pod>(data: &[T], shape: &[usize], dtype: DType) -> DeviceTensor {
    let ctx = ctx();
    let bytes: &[u8] = bytemuck::cast_slice(data);
    let words = bytes.len().div_ceil(4) * 4;
    let buffer = ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("exact"),
        size: AT + words as u64,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_DST
            | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let mut contents = sentinel();
    contents.extend_from_slice(bytes);
    contents.resize(AT as usize + words, 0);
    ctx.queue().write_buffer(&buffer, 0, &contents);
    DeviceTensor::from_buffer(ctx, &buffer, AT, shape, dtype).unwrap()
}

fn sentinel() -> Vec<u8> {
    (0..AT).map(|i| (i * 37 % 251) as u8).collect()
}

/// Asserts that the `AT` bytes before `t` are still the sentinel.
fn assert_sentinel(t: &DeviceTensor) {
    let words = DeviceTensor::from_buffer(ctx(), t.buffer(), 0, &[AT as usize / 4], DType::F32)
        .unwrap()
        .read_f32(ctx())
        .unwrap();
    let bytes: &[u8] = bytemuck::cast_slice(&words);
    assert_eq!(
        bytes,
        &sentinel()[..],
        "the bytes before the tensor changed"
    );
}

/// 3 × 7: 21 elements, 84 bytes of f32 (not a multiple of 16), 42 of f16 (not of 8).
const N: usize = 3;
const C: usize = 7;

fn logits() -> Vec<f32> {
    (0..N * C)
        .map(|i| ((i * 7919) % 1000) as f32 / 100.0 - 5.0)
        .collect()
}

const TARGETS: [i32; N] = [1, 6, 3];

fn reference(x: &[f32]) -> wgpu_xent::LossAndGrad {
    cpu::cross_entropy_backward(
        Tensor::new(x, &[N, C]),
        Target::I32(Tensor::new(&TARGETS, &[N])),
        &Default::default(),
        &Default::default(),
    )
    .unwrap()
}

#[test]
fn f32_logits_in_place_in_an_exact_buffer() {
    let ctx = ctx();
    let x = logits();
    let t = exact(&x, &[N, C], DType::F32);
    let target = DeviceTensor::from_host(ctx, &TARGETS, &[N], DType::I32).unwrap();
    let call = LossCall::cross_entropy(&t, &target)
        .options(LossOptions::default())
        .grad(Grad::InPlace);
    let step = ctx.prepare(&call).unwrap();
    let (out, _) = step.run_timed().unwrap();
    let grad = t.read_f32(ctx).unwrap();
    let tol = ((1e-6, 1e-6), (1e-7, 1e-5));
    assert_loss_and_grad(
        "in place",
        (&out.loss.data, &grad),
        reference(&x),
        tol.0,
        tol.1,
    );
    assert_sentinel(&t);
}

#[test]
fn f32_gradient_into_and_probabilities_from_exact_buffers() {
    let ctx = ctx();
    let x = logits();
    let logits = exact(&x, &[N, C], DType::F32);
    let grad = exact(&[0f32; N * C], &[N, C], DType::F32);
    let target = DeviceTensor::from_host(ctx, &TARGETS, &[N], DType::I32).unwrap();
    let grads = [&grad];
    let call = LossCall::cross_entropy(&logits, &target)
        .options(LossOptions::default())
        .grad(Grad::Into(&grads));
    let step = ctx.prepare(&call).unwrap();
    let (out, _) = step.run_timed().unwrap();
    let tol = ((1e-6, 1e-6), (1e-7, 1e-5));
    let ours = grad.read_f32(ctx).unwrap();
    assert_loss_and_grad(
        "grad_into",
        (&out.loss.data, &ours),
        reference(&x),
        tol.0,
        tol.1,
    );
    assert_sentinel(&grad);
    assert_eq!(logits.read_f32(ctx).unwrap(), x, "the logits changed");

    let p: Vec<f32> = (0..N * C).map(|i| ((i % C) + 1) as f32 / 28.0).collect();
    let probs = exact(&p, &[N, C], DType::F32);
    let step = ctx
        .prepare(&LossCall::cross_entropy(&logits, &probs).options(LossOptions::default()))
        .unwrap();
    let (out, _) = step.run_timed().unwrap();
    let truth = cpu::cross_entropy(
        Tensor::new(&x, &[N, C]),
        Target::Probs(Tensor::new(&p, &[N, C])),
        &Default::default(),
    )
    .unwrap();
    assert_close(
        "probabilities",
        &out.loss.data,
        &widen(&truth.data),
        1e-6,
        1e-6,
    );
}

#[test]
fn f16_logits_of_an_odd_count_in_place_in_an_exact_buffer() {
    let ctx = ctx();
    let x: Vec<half::f16> = logits().iter().map(|&v| half::f16::from_f32(v)).collect();
    let widened: Vec<f32> = x.iter().map(|v| v.to_f32()).collect();
    let t = exact(&x, &[N, C], DType::F16);
    let target = DeviceTensor::from_host(ctx, &TARGETS, &[N], DType::I32).unwrap();
    let call = LossCall::cross_entropy(&t, &target)
        .options(LossOptions::default())
        .grad(Grad::InPlace);
    let step = ctx.prepare(&call).unwrap();
    let (out, _) = step.run_timed().unwrap();
    let grad: Vec<f32> = t
        .read_u16(ctx)
        .unwrap()
        .iter()
        .map(|&b| half::f16::from_bits(b).to_f32())
        .collect();
    let tol = ((1e-6, 1e-6), (1e-3, 1e-3));
    let truth = reference(&widened);
    assert_loss_and_grad("f16 in place", (&out.loss.data, &grad), truth, tol.0, tol.1);
    assert_sentinel(&t);
}

#[test]
fn softmax_of_an_exact_buffer() {
    let ctx = ctx();
    let x = logits();
    let t = exact(&x, &[N, C], DType::F32);
    let p = ctx.prepare(&SoftmaxCall::log_softmax(&t, 1)).unwrap();
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    p.record(&mut encoder);
    ctx.queue().submit(Some(encoder.finish()));
    let truth = cpu::log_softmax(Tensor::new(&x, &[N, C]), 1).unwrap();
    let ours = p.output().read_f32(ctx).unwrap();
    assert_close("log_softmax", &ours, &widen(&truth.data), 1e-6, 1e-6);
    assert_eq!(t.read_f32(ctx).unwrap(), x, "the input changed");
}
