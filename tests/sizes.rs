//! Sizes past the adapter's limits: more than one storage binding of logits, more than
//! 65,535 rows, and chunking of strided (K-dim) inputs.

mod common;

use common::{assert_close, ctx, widen, Rng};
use wgpu_xent::{cpu, Context, ContextOptions, LossOptions, Reduction, Target, Tensor};

/// 8704 × 4096 f32 is 136 MiB: more than the 128 MiB one binding holds on lavapipe/llvmpipe.
#[test]
fn logits_larger_than_one_binding() {
    let (n, c) = (8704, 4096);
    assert!(n * c * 4 > 128 << 20);
    let mut rng = Rng(7);
    let x = rng.logits(n * c, 3.0);
    let t: Vec<i64> = (0..n).map(|_| rng.below(c) as i64).collect();
    let (shape, tshape) = ([n, c], [n]);
    let input = Tensor::new(&x, &shape);
    let target = Target::I64(Tensor::new(&t, &tshape));
    for reduction in [Reduction::Mean, Reduction::None] {
        let opts = LossOptions {
            reduction,
            ..Default::default()
        };
        let gpu = ctx().cross_entropy(input, target, &opts).unwrap();
        let reference = cpu::cross_entropy(input, target, &opts).unwrap();
        assert_close(
            "cross_entropy",
            &gpu.data,
            &widen(&reference.data),
            1e-5,
            1e-5,
        );
    }
    let gpu = ctx().log_softmax(input, 1).unwrap();
    let reference = cpu::log_softmax(input, 1).unwrap();
    assert_close(
        "log_softmax",
        &gpu.data,
        &widen(&reference.data),
        1e-5,
        1e-5,
    );
}

/// 70,000 rows: more workgroups than one dispatch dimension holds.
#[test]
fn more_than_65535_rows() {
    let (n, c) = (70_000, 7);
    let mut rng = Rng(8);
    let x = rng.logits(n * c, 2.0);
    let t: Vec<i32> = (0..n)
        .map(|i| {
            if i % 11 == 0 {
                -100
            } else {
                rng.below(c) as i32
            }
        })
        .collect();
    let w: Vec<f32> = (0..c).map(|_| rng.uniform() + 0.5).collect();
    let (shape, tshape) = ([n, c], [n]);
    let input = Tensor::new(&x, &shape);
    let target = Target::I32(Tensor::new(&t, &tshape));
    for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
        let opts = LossOptions {
            reduction,
            weight: Some(&w),
            ..Default::default()
        };
        let gpu = ctx().cross_entropy(input, target, &opts).unwrap();
        let reference = cpu::cross_entropy(input, target, &opts).unwrap();
        assert_close(
            "cross_entropy",
            &gpu.data,
            &widen(&reference.data),
            1e-5,
            1e-5,
        );
        let gpu = ctx().nll_loss(input, target, &opts).unwrap();
        let reference = cpu::nll_loss(input, target, &opts).unwrap();
        assert_close("nll_loss", &gpu.data, &widen(&reference.data), 1e-5, 1e-5);
    }
    let gpu = ctx().softmax(input, -1).unwrap();
    let reference = cpu::softmax(input, -1).unwrap();
    assert_close("softmax", &gpu.data, &widen(&reference.data), 1e-6, 1e-5);
}

/// A binding limit of 1 KiB splits even small K-dim inputs into many chunks.
#[test]
fn chunked_strided_inputs_match_the_reference() {
    let small = Context::with_options(ContextOptions {
        max_binding_bytes: Some(1024),
        ..wgpu_xent::ContextOptions::from_env().unwrap()
    })
    .unwrap();
    let shape = [37, 5, 3, 4];
    let mut rng = Rng(9);
    let x = rng.logits(shape.iter().product(), 2.0);
    let t: Vec<i64> = (0..37 * 12)
        .map(|i| if i % 5 == 0 { 2 } else { rng.below(5) as i64 })
        .collect();
    let input = Tensor::new(&x, &shape);
    let target = Target::I64(Tensor::new(&t, &[37, 3, 4]));
    for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
        let opts = LossOptions {
            reduction,
            ignore_index: 2,
            label_smoothing: 0.2,
            ..Default::default()
        };
        let gpu = small.cross_entropy(input, target, &opts).unwrap();
        let reference = cpu::cross_entropy(input, target, &opts).unwrap();
        assert_close(
            "cross_entropy",
            &gpu.data,
            &widen(&reference.data),
            1e-5,
            1e-5,
        );
    }
    for dim in [1, 2, -1] {
        let gpu = small.log_softmax(input, dim).unwrap();
        let reference = cpu::log_softmax(input, dim).unwrap();
        assert_close(
            "log_softmax",
            &gpu.data,
            &widen(&reference.data),
            1e-5,
            1e-5,
        );
    }
    // One class slice larger than the binding: bound a few segments at a time (issue 11, D20).
    let gpu = small.log_softmax(input, 0).unwrap();
    let reference = cpu::log_softmax(input, 0).unwrap();
    assert_close(
        "log_softmax over a slice larger than the binding",
        &gpu.data,
        &widen(&reference.data),
        1e-5,
        1e-5,
    );
}

/// Two runs give bitwise the same output, reductions included.
#[test]
fn results_are_bitwise_deterministic() {
    let (n, c) = (3000, 1001);
    let mut rng = Rng(10);
    let x = rng.logits(n * c, 4.0);
    let t: Vec<i64> = (0..n).map(|_| rng.below(c) as i64).collect();
    let w: Vec<f32> = (0..c).map(|_| rng.uniform()).collect();
    let (shape, tshape) = ([n, c], [n]);
    let input = Tensor::new(&x, &shape);
    let target = Target::I64(Tensor::new(&t, &tshape));
    let opts = LossOptions {
        weight: Some(&w),
        label_smoothing: 0.1,
        ..Default::default()
    };
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let a = ctx().cross_entropy(input, target, &opts).unwrap();
    let b = ctx().cross_entropy(input, target, &opts).unwrap();
    assert_eq!(bits(&a.data), bits(&b.data));
    let a = ctx().log_softmax(input, 1).unwrap();
    let b = ctx().log_softmax(input, 1).unwrap();
    assert_eq!(bits(&a.data), bits(&b.data));
}
