//! Non-finite parameters (issue 11, D19): an infinite class weight or upstream gradient gives
//! PyTorch's gradient, NaN at the target (its autograd computes `G_y - p_y·Σ G` = -inf + inf)
//! and inf elsewhere, on the GPU and the CPU reference alike. The patterns below are
//! PyTorch's, derived from its backward (`nll_loss` then `log_softmax`).

mod common;

use common::{assert_close, ctx, widen};
use wgpu_xent::{cpu, BackwardOptions, LossOptions, Reduction, Target, Tensor};

/// What each gradient element must be: NaN, +inf, or finite.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Nan,
    Inf,
    Finite,
}

fn kind(v: f64) -> Kind {
    match v {
        v if v.is_nan() => Kind::Nan,
        v if v == f64::INFINITY => Kind::Inf,
        v if v.is_finite() => Kind::Finite,
        v => panic!("unexpected {v}"),
    }
}

fn check(what: &str, weight: [f32; 3], eps: f32, reduction: Reduction, g: f32, expect: [Kind; 6]) {
    let x = [0.5f32, -1.0, 2.0, 1.5, 0.25, -0.5];
    let t = [0i64, 1];
    let (shape, tshape) = ([2, 3], [2]);
    let opts = LossOptions {
        weight: Some(&weight),
        label_smoothing: eps,
        reduction,
        ..Default::default()
    };
    let b = BackwardOptions { grad_output: g };
    let input = Tensor::new(&x, &shape);
    let target = Target::I64(Tensor::new(&t, &tshape));
    let truth = cpu::cross_entropy_backward(input, target, &opts, &b).unwrap();
    let truth = widen(&truth.grad.unwrap().data);
    let kinds: Vec<Kind> = truth.iter().map(|&v| kind(v)).collect();
    assert_eq!(kinds, expect, "{what}: the CPU reference {truth:?}");
    let ours = ctx()
        .cross_entropy_backward(input, target, &opts, &b)
        .unwrap();
    assert_close(what, &ours.grad.unwrap().data, &truth, 1e-6, 1e-5);
}

#[test]
fn infinite_weights_and_upstream_gradients_follow_pytorch() {
    use Kind::{Finite as F, Inf as I, Nan as N};
    use Reduction::{Mean, Sum};
    let (inf, one) = (f32::INFINITY, 1.0);
    #[rustfmt::skip]
    let cases = [
        // Row 0's target has weight inf; sum: NaN at the target, inf elsewhere.
        ("inf weight, sum", [inf, one, one], 0.0, Sum, 1.0, [N, I, I, F, F, F]),
        // Mean: D = inf, so row 0 is NaN throughout and row 1 is 0.
        ("inf weight, mean", [inf, one, one], 0.0, Mean, 1.0, [N, N, N, F, F, F]),
        // With smoothing the inf weight reaches every row through Σ w.
        ("inf weight, smoothing", [inf, one, one], 0.1, Sum, 1.0, [N, I, I, N, I, I]),
        // g = inf: NaN at each target, inf elsewhere (sum and mean alike).
        ("g = inf, sum", [one, one, one], 0.0, Sum, inf, [N, I, I, I, N, I]),
        ("g = inf, mean", [one, one, one], 0.0, Mean, inf, [N, I, I, I, N, I]),
        // With smoothing every G_c is -inf, so everything is NaN.
        ("g = inf, smoothing", [one, one, one], 0.1, Sum, inf, [N; 6]),
    ];
    for (what, weight, eps, reduction, g, expect) in cases {
        check(what, weight, eps, reduction, g, expect);
    }
}
