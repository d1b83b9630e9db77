//! Bad input is an `Err` with PyTorch's wording, on the GPU path and the CPU reference alike.

mod common;

use common::ctx;
use wgpu_xent::{cpu, LossOptions, Output, Result, Target, Tensor, XentError};

fn both(
    x: &[f32],
    shape: &[usize],
    target: Target,
    opts: &LossOptions,
) -> (Result<Output>, Result<Output>) {
    let input = Tensor::new(x, shape);
    (
        ctx().cross_entropy(input, target, opts),
        cpu::cross_entropy(input, target, opts),
    )
}

fn message(r: (Result<Output>, Result<Output>)) -> String {
    let gpu =
        r.0.expect_err("the GPU path accepted bad input")
            .to_string();
    let cpu =
        r.1.expect_err("the CPU reference accepted bad input")
            .to_string();
    assert_eq!(gpu, cpu);
    gpu
}

#[test]
fn target_out_of_range_names_position_value_and_classes() {
    let x = vec![0.0; 2 * 3 * 2];
    let t = [0i64, 1, -3, 2];
    let m = message(both(
        &x,
        &[2, 3, 2],
        Target::I64(Tensor::new(&t, &[2, 2])),
        &Default::default(),
    ));
    assert!(m.starts_with("Target -3 is out of bounds"), "{m}");
    assert!(m.contains("[1, 0]") && m.contains("[0, 3)"), "{m}");
}

#[test]
fn shape_errors_read_like_pytorch() {
    let x = vec![0.0; 20];
    let t = [0i64, 1, 2];
    let m = message(both(
        &x,
        &[4, 5],
        Target::I64(Tensor::new(&t, &[3])),
        &Default::default(),
    ));
    assert_eq!(
        m,
        "Expected input batch_size (4) to match target batch_size (3)."
    );
    let w = [1.0f32; 3];
    let t4 = [0i64, 1, 2, 3];
    let opts = LossOptions {
        weight: Some(&w),
        ..Default::default()
    };
    let m = message(both(
        &x,
        &[4, 5],
        Target::I64(Tensor::new(&t4, &[4])),
        &opts,
    ));
    assert!(
        m.starts_with("weight tensor should be defined either for all 5 classes"),
        "{m}"
    );
    let x = vec![0.0; 2 * 5 * 3 * 4];
    let t = vec![0i64; 2 * 4 * 3];
    let m = message(both(
        &x,
        &[2, 5, 3, 4],
        Target::I64(Tensor::new(&t, &[2, 4, 3])),
        &Default::default(),
    ));
    assert!(
        m.starts_with("size mismatch (got input: [2, 5, 3, 4] , target: [2, 4, 3]"),
        "{m}"
    );
}

#[test]
fn argument_errors_read_like_pytorch() {
    let x = vec![0.0; 6];
    let t = [0i64, 1];
    let opts = LossOptions {
        label_smoothing: 1.5,
        ..Default::default()
    };
    let m = message(both(&x, &[2, 3], Target::I64(Tensor::new(&t, &[2])), &opts));
    assert_eq!(m, "label_smoothing must be between 0.0 and 1.0. Got: 1.5");
    let p = vec![0.5f32; 6];
    let opts = LossOptions {
        ignore_index: 1,
        ..Default::default()
    };
    let m = message(both(
        &x,
        &[2, 3],
        Target::Probs(Tensor::new(&p, &[2, 3])),
        &opts,
    ));
    assert_eq!(m, "ignore_index is not supported for floating point target");
}

#[test]
fn dim_out_of_range_and_bad_lengths() {
    let x = vec![0.0; 6];
    let err = ctx().log_softmax(Tensor::new(&x, &[2, 3]), 2).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Dimension out of range (expected to be in range of [-2, 1], but got 2)"
    );
    assert!(matches!(
        cpu::softmax(Tensor::new(&x, &[2, 3]), -3),
        Err(XentError::DimOutOfRange { .. })
    ));
    let err = ctx().softmax(Tensor::new(&x, &[4, 3]), 1).unwrap_err();
    assert!(err.to_string().contains("but 6 elements of data"), "{err}");
}

#[test]
fn empty_batches_follow_pytorch() {
    let t: [i64; 0] = [];
    for (reduction, expect) in [("mean", f32::NAN), ("sum", 0.0)] {
        let opts = LossOptions {
            reduction: reduction.parse().unwrap(),
            ..Default::default()
        };
        let out = ctx()
            .cross_entropy(
                Tensor::<f32>::new(&[], &[0, 5]),
                Target::I64(Tensor::new(&t, &[0])),
                &opts,
            )
            .unwrap();
        assert_eq!(out.shape, Vec::<usize>::new());
        assert_eq!(out.scalar().to_bits(), expect.to_bits(), "{reduction}");
    }
    // An empty class axis with every target ignored is accepted, as in PyTorch.
    let t = [-100i64; 3];
    let out = ctx()
        .cross_entropy(
            Tensor::<f32>::new(&[], &[3, 0]),
            Target::I64(Tensor::new(&t, &[3])),
            &Default::default(),
        )
        .unwrap();
    assert!(out.scalar().is_nan());
}

/// The messages PyTorch's own `module_db` error inputs give (issue 11).
#[test]
fn target_dtype_and_size_errors_read_like_pytorch() {
    let x = vec![0.0; 6];
    let p = [0.5f32, 0.5];
    let m = message(both(
        &x,
        &[2, 3],
        Target::Probs(Tensor::new(&p, &[2])),
        &Default::default(),
    ));
    assert_eq!(m, "expected target dtype to be Long or Byte, but got Float");
    let t = [0i64; 6];
    let m = message(both(
        &x,
        &[2, 3],
        Target::I64(Tensor::new(&t, &[2, 3])),
        &Default::default(),
    ));
    assert_eq!(
        m,
        "Expected floating point type for target with class probabilities, got Long"
    );
    let x = vec![0.0; 30];
    let t = [0i64; 8];
    let m = message(both(
        &x,
        &[2, 3, 5],
        Target::I64(Tensor::new(&t, &[2, 4])),
        &Default::default(),
    ));
    assert_eq!(m, "Expected target size [2, 5], got [2, 4]");
}

/// Shapes whose element count overflows are refused, never allocated (issue 11, D7).
#[test]
fn overflowing_shapes_are_refused() {
    let huge = [1usize << 62, 4];
    let t: [i64; 0] = [];
    let m = message(both(
        &[],
        &huge,
        Target::I64(Tensor::new(&t, &huge[..1])),
        &Default::default(),
    ));
    assert!(
        m.contains("more elements than this machine can address"),
        "{m}"
    );
    let err = ctx()
        .log_softmax(Tensor::<f32>::new(&[], &huge), -1)
        .unwrap_err();
    assert!(matches!(err, XentError::InvalidShape(_)), "{err}");
    let err = cpu::log_softmax(Tensor::<f32>::new(&[], &huge), -1).unwrap_err();
    assert!(matches!(err, XentError::InvalidShape(_)), "{err}");
    let big = [1usize << 32, 1 << 32];
    let err = ctx().softmax(Tensor::<f32>::new(&[], &big), 0).unwrap_err();
    assert!(matches!(err, XentError::InvalidShape(_)), "{err}");
}
