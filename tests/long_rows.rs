//! Rows longer than one invocation's loop budget (issue 11, D1-D4): Mesa's software adapters
//! silently stop an invocation's loops after 65,535 trips in all, which left the tails of long
//! rows unwritten. Long rows are now cut into segments (src/geometry/rows.rs); these tests cover
//! the boundaries on the default budget, and every segmented path on small data with a tiny
//! one. Each result is checked against the f64 CPU reference with tolerances that a zero in
//! place of a tiny softmax value fails.
//!
//! The large cases need about 2 GiB of memory and a few seconds each on lavapipe.

mod common;

use common::{assert_close, assert_loss_and_grad, ctx, widen, Rng};
use wgpu_xent::{
    cpu, BackwardOptions, Context, ContextOptions, Grad, LossCall, LossOptions, Reduction, Target,
    Tensor,
};

/// log_softmax, softmax and both backward passes of `shape` along `dim`, on `gpu`.
fn check_softmax_family(gpu: &Context, shape: &[usize], dim: i64, seed: u64) {
    let n: usize = shape.iter().product();
    let mut rng = Rng(seed);
    let x = rng.logits(n, 2.0);
    let gy = rng.logits(n, 1.0);
    let input = Tensor::new(&x, shape);
    let what = |op: &str| format!("{op} {shape:?} dim {dim}");
    let ours = gpu.log_softmax(input, dim).unwrap();
    let truth = cpu::log_softmax(input, dim).unwrap();
    assert_close(
        &what("log_softmax"),
        &ours.data,
        &widen(&truth.data),
        1e-4,
        1e-5,
    );
    let ours = gpu.softmax(input, dim).unwrap();
    let truth = cpu::softmax(input, dim).unwrap();
    // Relative: a zero in place of a value of 1e-7 fails.
    assert_close(
        &what("softmax"),
        &ours.data,
        &widen(&truth.data),
        1e-12,
        1e-3,
    );
    let out = cpu::log_softmax(input, dim).unwrap().data;
    let (g, o) = (Tensor::new(&gy, shape), Tensor::new(&out, shape));
    let ours = gpu.log_softmax_backward(g, o, dim).unwrap();
    let truth = cpu::log_softmax_backward(g, o, dim).unwrap();
    assert_close(
        &what("log_softmax_backward"),
        &ours.data,
        &widen(&truth.data),
        1e-4,
        1e-4,
    );
    let out = cpu::softmax(input, dim).unwrap().data;
    let o = Tensor::new(&out, shape);
    let ours = gpu.softmax_backward(g, o, dim).unwrap();
    let truth = cpu::softmax_backward(g, o, dim).unwrap();
    assert_close(
        &what("softmax_backward"),
        &ours.data,
        &widen(&truth.data),
        1e-10,
        1e-3,
    );
}

/// cross_entropy's fused forward + backward (and nll_loss's) against the reference.
fn check_loss(gpu: &Context, shape: &[usize], targets: &[i64], opts: &LossOptions, seed: u64) {
    let n: usize = shape.iter().product();
    let x = Rng(seed).logits(n, 2.0);
    let tshape: Vec<usize> = std::iter::once(shape[0])
        .chain(shape[2..].iter().copied())
        .collect();
    let input = Tensor::new(&x, shape);
    let target = Target::I64(Tensor::new(targets, &tshape));
    let b = BackwardOptions::default();
    let ours = gpu.cross_entropy_backward(input, target, opts, &b).unwrap();
    let truth = cpu::cross_entropy_backward(input, target, opts, &b).unwrap();
    let grad = ours.grad.as_ref().unwrap();
    let what = format!("cross_entropy {shape:?} {opts:?}");
    assert_loss_and_grad(
        &what,
        (&ours.loss.data, &grad.data),
        truth,
        (1e-4, 1e-4),
        (1e-10, 1e-3),
    );
    if opts.label_smoothing == 0.0 && opts.z_loss == 0.0 {
        let ours = gpu.nll_loss_backward(input, target, opts, &b).unwrap();
        let truth = cpu::nll_loss_backward(input, target, opts, &b).unwrap();
        let grad = ours.grad.as_ref().unwrap();
        let what = format!("nll_loss {shape:?}");
        assert_loss_and_grad(
            &what,
            (&ours.loss.data, &grad.data),
            truth,
            (1e-5, 1e-5),
            (1e-7, 1e-6),
        );
    }
}

/// A context whose invocations may take only 8 loop trips: every row of more than a few
/// dozen classes is cut into segments.
fn tiny_budget() -> Context {
    Context::with_options(ContextOptions {
        max_loop_trips: Some(8),
        ..wgpu_xent::ContextOptions::from_env().unwrap()
    })
    .unwrap()
}

#[test]
fn softmax_family_on_segmented_rows_of_every_layout() {
    let gpu = tiny_budget();
    for (shape, dim) in [
        (vec![3, 1000], -1),
        (vec![2, 4097], 1),
        (vec![5, 1001], -1),
        (vec![1, 33], 1),
        (vec![2, 301, 3], 1),
        (vec![700, 2], 0),
        (vec![4, 3, 130], -1),
    ] {
        check_softmax_family(&gpu, &shape, dim, 11);
    }
}

#[test]
fn losses_on_segmented_rows_with_every_option() {
    let gpu = tiny_budget();
    let w: Vec<f32> = (0..1001).map(|i| 0.5 + (i % 7) as f32 * 0.25).collect();
    for (shape, targets) in [
        (vec![3, 1000], vec![999, 0, -100]),
        (vec![2, 1001], vec![500, 1000]),
        (vec![2, 1001, 3], vec![1, 2, 3, 1000, -100, 0]),
    ] {
        let c = shape[1];
        for opts in [
            LossOptions::default(),
            LossOptions {
                weight: Some(&w[..c]),
                reduction: Reduction::Sum,
                ..Default::default()
            },
            LossOptions {
                label_smoothing: 0.1,
                z_loss: 1e-3,
                softcap: Some(5.0),
                reduction: Reduction::None,
                ..Default::default()
            },
        ] {
            check_loss(&gpu, &shape, &targets, &opts, 3);
        }
    }
}

/// D1 and D2: 5,000,000 and the powers of two past 2^20, 2^22 and 2^24 classes.
#[test]
fn softmax_family_past_the_loop_limit() {
    for c in [(1 << 20) + 1, (1 << 22) + 1, 5_000_000, (1 << 24) + 1] {
        check_softmax_family(ctx(), &[1, c], -1, c as u64);
    }
    // Strided rows: softmax over dim 0 of [4_500_000, 2].
    check_softmax_family(ctx(), &[4_500_000, 2], 0, 5);
}

/// D3 and D4: class targets near 2^24, and smoothing, z-loss and probabilities at 2^24 + 3.
#[test]
fn losses_past_the_loop_limit() {
    let c = (1 << 24) + 3;
    let near = [c as i64 - 1, (1 << 24) - 1];
    check_loss(ctx(), &[2, c], &near, &LossOptions::default(), 1);
    check_loss(
        ctx(),
        &[2, 600_000],
        &[524_288, 0],
        &LossOptions::default(),
        2,
    );
    let smoothing = LossOptions {
        label_smoothing: 0.1,
        ..Default::default()
    };
    check_loss(ctx(), &[1, c], &[c as i64 - 2], &smoothing, 3);
    let z = LossOptions {
        z_loss: 1e-4,
        ..Default::default()
    };
    check_loss(ctx(), &[1, c], &[(1 << 24) + 1], &z, 4);
    // Probability targets.
    let mut rng = Rng(9);
    let x = rng.logits(c, 2.0);
    let mut p: Vec<f32> = (0..c).map(|_| rng.uniform()).collect();
    let total: f32 = p.iter().sum();
    p.iter_mut().for_each(|v| *v /= total);
    let shape = [1, c];
    let (input, target) = (
        Tensor::new(&x, &shape),
        Target::Probs(Tensor::new(&p, &shape)),
    );
    let b = BackwardOptions::default();
    let opts = LossOptions::default();
    let ours = ctx()
        .cross_entropy_backward(input, target, &opts, &b)
        .unwrap();
    let truth = cpu::cross_entropy_backward(input, target, &opts, &b).unwrap();
    let grad = ours.grad.as_ref().unwrap();
    assert_loss_and_grad(
        "probs",
        (&ours.loss.data, &grad.data),
        truth,
        (1e-4, 1e-4),
        (1e-12, 1e-3),
    );
}

/// A context whose storage bindings hold 1,024 values: every row below is larger than one
/// binding and is bound a few segments at a time.
fn tiny_binding() -> Context {
    Context::with_options(ContextOptions {
        max_binding_bytes: Some(4096),
        ..wgpu_xent::ContextOptions::from_env().unwrap()
    })
    .unwrap()
}

/// D20 on small data: rows larger than one binding, contiguous and strided.
#[test]
fn rows_larger_than_one_binding_on_small_data() {
    let gpu = tiny_binding();
    for (shape, dim) in [
        (vec![2, 5000], -1),
        (vec![1, 4099], 1),
        (vec![2, 3000, 3], 1),
    ] {
        check_softmax_family(&gpu, &shape, dim, 17);
    }
    let w: Vec<f32> = (0..5000).map(|i| 0.5 + (i % 5) as f32 * 0.25).collect();
    for (shape, targets) in [
        (vec![3, 5000], vec![4999, 0, -100]),
        (vec![2, 4099], vec![1000, 4098]),
        (vec![2, 3000, 3], vec![1, 2999, 3, 1000, -100, 0]),
    ] {
        let c = shape[1];
        for opts in [
            LossOptions::default(),
            LossOptions {
                weight: Some(&w[..c]),
                reduction: Reduction::None,
                ..Default::default()
            },
            LossOptions {
                label_smoothing: 0.2,
                z_loss: 1e-3,
                softcap: Some(4.0),
                reduction: Reduction::Sum,
                ..Default::default()
            },
        ] {
            check_loss(&gpu, &shape, &targets, &opts, 7);
        }
    }
}

/// D20: a (2, 40,000,000) cross-entropy (160 MB a row, past lavapipe's 128 MiB binding) and a
/// 1 × 40,000,000 softmax family.
#[test]
fn rows_larger_than_one_binding() {
    let c = 40_000_000;
    assert!(c * 4 > ctx().info().tuning.max_binding_bytes as usize);
    check_loss(
        ctx(),
        &[2, c],
        &[c as i64 - 1, 12_345],
        &LossOptions::default(),
        8,
    );
    let smoothing = LossOptions {
        label_smoothing: 0.1,
        ..Default::default()
    };
    check_loss(ctx(), &[1, c], &[33_554_433], &smoothing, 9);
    check_softmax_family(ctx(), &[1, c], -1, 10);
}

/// The in-place gradient and the per-row lse of rows larger than one binding.
#[test]
fn in_place_and_lse_on_rows_larger_than_one_binding() {
    let gpu = tiny_binding();
    let (shape, tshape) = ([2, 5000], [2]);
    let x = Rng(21).logits(10_000, 2.0);
    let t = [4321i64, 17];
    let target = Target::I64(Tensor::new(&t, &tshape));
    let opts = LossOptions {
        label_smoothing: 0.1,
        ..Default::default()
    };
    let b = BackwardOptions { grad_output: 1.0 };
    let truth = cpu::cross_entropy_backward(Tensor::new(&x, &shape), target, &opts, &b).unwrap();
    let call = LossCall::cross_entropy(Tensor::new(&x, &shape), target)
        .options(opts)
        .grad(Grad::InPlace)
        .grad_output(b.grad_output)
        .lse(true);
    let ours = gpu.run(&call).unwrap();
    // The in-place gradient now comes back in `.grad` (the caller's slice is not written).
    let g = ours.grad.expect("the in-place gradient is returned").data;
    let lse = ours.lse.unwrap();
    assert_close(
        "lse",
        &lse.data,
        &widen(&truth.lse.unwrap().data),
        1e-5,
        1e-6,
    );
    assert_close(
        "loss",
        &ours.loss.data,
        &widen(&truth.loss.data),
        1e-5,
        1e-5,
    );
    let truth = widen(&truth.grad.unwrap().data);
    assert_close("in-place gradient", &g, &truth, 1e-10, 1e-3);
}
