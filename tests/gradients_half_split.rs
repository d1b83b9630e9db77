//! Gradients on 16-bit logits and on rows split across workgroups: every f16 and bf16 bit
//! pattern widened exactly, f16/bf16 logits and `half` slices against the reference, and long
//! rows whose partial statistics are merged, in place too.

mod common;

use common::{assert_close, ctx, widen, Rng};
use wgpu_xent::{cpu, BackwardOptions, Grad, LossCall, LossOptions, Reduction, Target, Tensor};

/// Every one of the 65,536 f16 and bf16 bit patterns widens to exactly the f32 the `half`
/// crate gives (zeros keep their sign, subnormals, infinities and NaNs included): nll_loss with
/// one class and weight 1 returns -x for each row.
#[test]
fn every_half_bit_pattern_widens_exactly() {
    use wgpu_xent::{DType, FloatTensor};
    let bits: Vec<u16> = (0..=u16::MAX).collect();
    let shape = [bits.len(), 1];
    let t = vec![0i64; bits.len()];
    let tshape = [bits.len()];
    let opts = LossOptions {
        reduction: Reduction::None,
        ..Default::default()
    };
    for dtype in [DType::F16, DType::BF16] {
        let logits = match dtype {
            DType::F16 => FloatTensor::F16(Tensor::new(&bits, &shape)),
            _ => FloatTensor::BF16(Tensor::new(&bits, &shape)),
        };
        let out = ctx()
            .nll_loss(logits, Target::I64(Tensor::new(&t, &tshape)), &opts)
            .unwrap();
        for (&b, &loss) in bits.iter().zip(&out.data) {
            let want = dtype.widen(b);
            let got = -loss;
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{dtype:?} {b:#06x}: got {got:e} ({:#010x}), want {want:e}",
                got.to_bits()
            );
        }
    }
}

/// f16 and bf16 logits (16-bit patterns, widened in the kernel, f32 arithmetic) agree with
/// the CPU reference on the same values, forward and backward, for contiguous and strided rows.
#[test]
fn half_precision_logits_match_the_reference() {
    use wgpu_xent::{DType, FloatTensor};
    let mut rng = Rng(11);
    for dtype in [DType::F16, DType::BF16] {
        for shape in [vec![37usize, 1001], vec![5, 7, 3], vec![64, 4]] {
            let x = rng.logits(shape.iter().product(), 4.0);
            let bits: Vec<u16> = x
                .iter()
                .map(|&v| match dtype {
                    DType::F16 => half::f16::from_f32(v).to_bits(),
                    _ => half::bf16::from_f32(v).to_bits(),
                })
                .collect();
            let logits = match dtype {
                DType::F16 => FloatTensor::F16(Tensor::new(&bits, &shape)),
                _ => FloatTensor::BF16(Tensor::new(&bits, &shape)),
            };
            let mut tshape = vec![shape[0]];
            tshape.extend(&shape[2..]);
            let t: Vec<i64> = (0..tshape.iter().product())
                .map(|_| rng.below(shape[1]) as i64)
                .collect();
            let target = Target::I64(Tensor::new(&t, &tshape));
            let opts = LossOptions {
                label_smoothing: 0.05,
                ..Default::default()
            };
            let b = BackwardOptions::default();
            let gpu = ctx()
                .cross_entropy_backward(logits, target, &opts, &b)
                .unwrap();
            let reference = cpu::cross_entropy_backward(logits, target, &opts, &b).unwrap();
            let what = format!("{dtype:?} {shape:?}");
            assert_close(
                &what,
                &gpu.loss.data,
                &widen(&reference.loss.data),
                1e-5,
                1e-5,
            );
            assert_close(
                &what,
                &gpu.grad.unwrap().data,
                &widen(&reference.grad.unwrap().data),
                1e-6,
                1e-3,
            );
            let gpu = ctx().log_softmax(logits, 1).unwrap();
            let reference = cpu::log_softmax(logits, 1).unwrap();
            assert_close(&what, &gpu.data, &widen(&reference.data), 1e-5, 1e-5);
        }
    }
}

/// Few, long rows split across workgroups (forced here with a high `min_workgroups`): the
/// partial statistics, their merge and the per-piece gradient agree with the CPU reference,
/// in place too, for every option.
#[test]
fn split_rows_match_the_reference() {
    use wgpu_xent::{Context, ContextOptions};
    let split = Context::with_options(ContextOptions {
        min_workgroups: Some(4096),
        ..wgpu_xent::ContextOptions::from_env().unwrap()
    })
    .unwrap();
    let mut rng = Rng(12);
    for (n, c) in [(3usize, 5003usize), (2, 20000), (5, 4096)] {
        let x = rng.logits(n * c, 4.0);
        let t: Vec<i64> = (0..n)
            .map(|i| if i == 1 { -100 } else { rng.below(c) as i64 })
            .collect();
        let w: Vec<f32> = (0..c).map(|_| rng.uniform() + 0.5).collect();
        let mut probs: Vec<f32> = (0..n * c).map(|_| rng.uniform()).collect();
        for row in probs.chunks_mut(c) {
            let s: f32 = row.iter().sum();
            row.iter_mut().for_each(|p| *p /= s);
        }
        let (shape, tshape) = ([n, c], [n]);
        for (k, opts) in [
            LossOptions::default(),
            LossOptions {
                weight: Some(&w),
                label_smoothing: 0.2,
                z_loss: 1e-3,
                softcap: Some(10.0),
                ..Default::default()
            },
            LossOptions {
                reduction: Reduction::None,
                ..Default::default()
            },
        ]
        .iter()
        .enumerate()
        {
            for target in [
                Target::I64(Tensor::new(&t, &tshape)),
                Target::Probs(Tensor::new(&probs, &shape)),
            ] {
                let what = format!("{n}x{c} options {k} {}", matches!(target, Target::Probs(_)));
                check_split_rows(&split, &what, Tensor::new(&x, &shape), target, opts);
            }
        }
    }
}

/// One case of `split_rows_match_the_reference` on the splitting context: the loss, gradient
/// and lse of the backward, the forward's loss, and the in-place gradient bitwise.
fn check_split_rows(
    split: &wgpu_xent::Context,
    what: &str,
    input: Tensor<f32>,
    target: Target,
    opts: &LossOptions,
) {
    let b = BackwardOptions { grad_output: 1.0 };
    let call = |grad| {
        LossCall::cross_entropy(input, target)
            .options(*opts)
            .grad(grad)
            .grad_output(b.grad_output)
            .lse(true)
    };
    let gpu = split.run(&call(Grad::Returned)).unwrap();
    let reference = cpu::cross_entropy_backward(input, target, opts, &b).unwrap();
    assert_close(
        what,
        &gpu.loss.data,
        &widen(&reference.loss.data),
        1e-5,
        1e-4,
    );
    assert_close(
        what,
        &gpu.grad.as_ref().unwrap().data,
        &widen(&reference.grad.unwrap().data),
        1e-7,
        1e-3,
    );
    assert_close(
        what,
        &gpu.lse.unwrap().data,
        &widen(&reference.lse.unwrap().data),
        1e-5,
        1e-6,
    );
    let forward = split.cross_entropy(input, target, opts).unwrap();
    assert_close(
        what,
        &forward.data,
        &widen(&reference.loss.data),
        1e-5,
        1e-4,
    );
    // The in-place gradient now comes back in `.grad` (the caller's slice is not written).
    let logits = split
        .run(&call(Grad::InPlace))
        .unwrap()
        .grad
        .expect("the in-place gradient is returned")
        .data;
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(&logits),
        bits(&gpu.grad.unwrap().data),
        "{what}: in place"
    );
}

/// `half::f16` and `half::bf16` slices are taken directly, and equal their `u16` bit patterns.
#[test]
fn half_types_are_taken_directly() {
    use wgpu_xent::FloatTensor;
    let ctx = common::ctx();
    let mut rng = common::Rng(11);
    let (n, c) = (5, 37);
    let x: Vec<f32> = rng.logits(n * c, 3.0);
    let y: Vec<i64> = (0..n).map(|i| (i * 7 % c) as i64).collect();
    let (shape, rows) = ([n, c], [n]);
    let opts = LossOptions::default();
    let f16: Vec<half::f16> = x.iter().map(|&v| half::f16::from_f32(v)).collect();
    let bf16: Vec<half::bf16> = x.iter().map(|&v| half::bf16::from_f32(v)).collect();
    let f16_bits: Vec<u16> = f16.iter().map(|v| v.to_bits()).collect();
    let bf16_bits: Vec<u16> = bf16.iter().map(|v| v.to_bits()).collect();
    let t = || Target::I64(Tensor::new(&y, &rows));
    let pairs = [
        (
            FloatTensor::from(Tensor::new(&f16, &shape)),
            FloatTensor::F16(Tensor::new(&f16_bits, &shape)),
        ),
        (
            FloatTensor::from(Tensor::new(&bf16, &shape)),
            FloatTensor::BF16(Tensor::new(&bf16_bits, &shape)),
        ),
    ];
    for (typed, bits) in pairs {
        assert_eq!(typed.dtype(), bits.dtype());
        let a = ctx.cross_entropy(typed, t(), &opts).unwrap();
        let b = ctx.cross_entropy(bits, t(), &opts).unwrap();
        assert_eq!(a.data[0].to_bits(), b.data[0].to_bits());
        let p = ctx.log_softmax(typed, 1).unwrap();
        let q = ctx.log_softmax(bits, 1).unwrap();
        assert_eq!(p.data, q.data);
    }
}
