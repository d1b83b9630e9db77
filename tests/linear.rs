//! linear_cross_entropy and its matrix product on the GPU against the f64 CPU reference, over
//! random shapes (D and C of 1, primes, chunks of one row and ragged last chunks), every
//! reduction and option, and bit-for-bit repeatability.

mod common;

use common::{assert_close, ctx, Rng};
use proptest::prelude::*;
use std::sync::OnceLock;
use wgpu_xent::cpu::linear::linear_cross_entropy as reference;
use wgpu_xent::cpu::wide::{WideOptions, WideTarget};
use wgpu_xent::{Context, ContextOptions, Linear, LossOptions, Reduction, Target, Tensor};

fn wide(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// One case: shapes, options, and whether the budget forces several chunks.
#[derive(Clone, Debug)]
struct Case {
    n: usize,
    d: usize,
    c: usize,
    bias: bool,
    weight: bool,
    smoothing: f32,
    reduction: Reduction,
    ignore_some: bool,
    budget_rows: usize,
    seed: u64,
    /// Run on a context whose bindings hold 4 KiB: every operand past that is cut.
    small_bindings: bool,
    /// z-loss and softcap (0 and None: off).
    z_loss: f32,
    softcap: Option<f32>,
}

/// A context whose bindings hold 4 KiB (1,024 floats), so that small shapes pass them.
fn small_ctx() -> &'static Context {
    static CTX: OnceLock<Context> = OnceLock::new();
    CTX.get_or_init(|| {
        Context::with_options(ContextOptions {
            max_binding_bytes: Some(4096),
            ..wgpu_xent::ContextOptions::from_env().unwrap()
        })
        .expect("GPU tests need an adapter")
    })
}

fn check(case: &Case) {
    let mut rng = Rng::new(case.seed);
    let (n, d, c) = (case.n, case.d, case.c);
    let x: Vec<f32> = (0..n * d).map(|_| rng.normal(1.0)).collect();
    let w: Vec<f32> = (0..c * d).map(|_| rng.normal(0.5)).collect();
    let b: Vec<f32> = (0..c).map(|_| rng.normal(1.0)).collect();
    let cw: Vec<f32> = (0..c).map(|_| 0.5 + rng.uniform()).collect();
    let t: Vec<i64> = (0..n)
        .map(|i| match case.ignore_some && i % 3 == 1 {
            true => -100,
            false => rng.below(c) as i64,
        })
        .collect();
    let (xs, ws, bs, ts) = ([n, d], [c, d], [c], [n]);
    let mut linear = Linear::new(Tensor::new(&x, &xs), Tensor::new(&w, &ws))
        .budget(case.budget_rows * c * 4)
        .lse(true);
    if case.bias {
        linear = linear.bias(Tensor::new(&b, &bs));
    }
    let opts = LossOptions {
        weight: case.weight.then_some(&cw[..]),
        label_smoothing: case.smoothing,
        reduction: case.reduction,
        z_loss: case.z_loss,
        softcap: case.softcap,
        ..Default::default()
    };
    let target = Target::I64(Tensor::new(&t, &ts));
    let ctx = if case.small_bindings {
        small_ctx()
    } else {
        ctx()
    };
    let ours = ctx
        .linear_cross_entropy_backward(linear, target, &opts)
        .unwrap();
    let again = ctx
        .linear_cross_entropy_backward(linear, target, &opts)
        .unwrap();
    let (xw, ww, bw, cww) = (wide(&x), wide(&w), wide(&b), wide(&cw));
    let wopts = WideOptions {
        weight: case.weight.then_some(&cww[..]),
        label_smoothing: case.smoothing as f64,
        reduction: case.reduction,
        z_loss: case.z_loss as f64,
        softcap: case.softcap.map(f64::from),
        ..Default::default()
    };
    let truth = reference(
        Tensor::new(&xw, &xs),
        Tensor::new(&ww, &ws),
        case.bias.then(|| Tensor::new(&bw, &bs)),
        WideTarget::Classes(target),
        &wopts,
        true,
    )
    .unwrap();
    let what = format!("{case:?}");
    let tol = 1e-5 * (d as f64).sqrt().max(1.0);
    assert_close(
        &format!("{what} loss"),
        &ours.loss.data,
        &truth.loss.data,
        tol,
        1e-4,
    );
    assert_eq!(ours.loss.shape, truth.loss.shape, "{what}");
    let pairs = [
        (&ours.grad_input, &truth.grad_input, "grad_input"),
        (
            &ours.grad_linear_weight,
            &truth.grad_linear_weight,
            "grad_linear_weight",
        ),
        (
            &ours.grad_linear_bias,
            &truth.grad_linear_bias,
            "grad_linear_bias",
        ),
        (&ours.lse, &truth.lse, "lse"),
    ];
    for (o, t, name) in pairs {
        match (o, t) {
            (Some(o), Some(t)) => {
                assert_eq!(o.shape, t.shape, "{what} {name}");
                assert_close(&format!("{what} {name}"), &o.data, &t.data, tol, 1e-4);
            }
            (None, None) => {}
            _ => panic!("{what} {name}: present in one of ours and the reference only"),
        }
    }
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(&ours.loss.data),
        bits(&again.loss.data),
        "{what}: not repeatable"
    );
    let (g1, g2) = (
        ours.grad_linear_weight.unwrap(),
        again.grad_linear_weight.unwrap(),
    );
    assert_eq!(bits(&g1.data), bits(&g2.data), "{what}: dW not repeatable");
}

#[test]
fn tile_edges_and_every_reduction() {
    let dims = [
        (1, 1, 1),
        (3, 5, 7),
        (17, 16, 33),
        (65, 4, 129),
        (8, 300, 50),
        (63, 129, 1000),
        // D and C multiples of 4: every product reads vec4s (along K, or along its rows for
        // dX's W and dW's G and X), with rows and columns past the tiles' edges.
        (37, 12, 68),
        (70, 64, 132),
        // D and C multiples of 8: on CPU adapters with subgroups and SHADER_INT64 every
        // product runs on matmul_lanes.wgsl (8 floats a load), with ragged K (rows) tails.
        (37, 16, 72),
        (70, 64, 136),
        (9, 8, 8),
        (33, 24, 200),
    ];
    for (i, (n, d, c)) in dims.into_iter().enumerate() {
        for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
            check(&Case {
                n,
                d,
                c,
                bias: i % 2 == 0,
                weight: i % 3 == 1,
                smoothing: if i % 2 == 1 { 0.1 } else { 0.0 },
                reduction,
                ignore_some: i % 2 == 0,
                budget_rows: 1 + i * 7,
                seed: i as u64,
                small_bindings: false,
                z_loss: 0.0,
                softcap: None,
            });
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    #[test]
    fn random_shapes_match_the_reference(
        n in 1usize..40, d in 1usize..40, c in 1usize..80, bias: bool, weight: bool,
        smooth: bool, r in 0usize..3, ignore_some: bool, budget_rows in 1usize..50, seed: u64,
    ) {
        let reduction = [Reduction::Mean, Reduction::Sum, Reduction::None][r];
        let smoothing = if smooth { 0.2 } else { 0.0 };
        check(&Case { n, d, c, bias, weight, smoothing, reduction, ignore_some, budget_rows, seed, small_bindings: false, z_loss: 0.0, softcap: None });
    }

    /// With 4 KiB bindings, the input, the weight and the gradients pass one binding: each
    /// product is cut into pieces over M, N and K, each binding a window of its buffers.
    #[test]
    fn operands_past_one_binding_match_the_reference(
        n in 1usize..40, d in 1usize..60, c in 1usize..200, bias: bool, weight: bool,
        r in 0usize..3, budget_rows in 1usize..50, seed: u64,
    ) {
        let reduction = [Reduction::Mean, Reduction::Sum, Reduction::None][r];
        let case = Case { n, d, c, bias, weight, smoothing: 0.1, reduction, ignore_some: true, budget_rows, seed, small_bindings: true, z_loss: 0.0, softcap: None };
        check(&case);
    }
}

#[test]
fn operands_past_one_binding_at_tile_edges() {
    // D and C multiples of 8 (matmul_lanes.wgsl where it runs), and not.
    for (i, (n, d, c)) in [(70, 64, 136), (33, 40, 264), (65, 37, 129), (1, 300, 3)]
        .into_iter()
        .enumerate()
    {
        check(&Case {
            n,
            d,
            c,
            bias: true,
            weight: i % 2 == 0,
            smoothing: 0.0,
            reduction: Reduction::Mean,
            ignore_some: false,
            budget_rows: 5,
            seed: 100 + i as u64,
            small_bindings: true,
            z_loss: 0.0,
            softcap: None,
        });
    }
}

#[test]
fn z_loss_and_softcap_match_the_reference() {
    for (i, (n, d, c)) in [(17, 16, 33), (40, 24, 72)].into_iter().enumerate() {
        for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
            check(&Case {
                n,
                d,
                c,
                bias: true,
                weight: i == 1,
                smoothing: 0.1,
                reduction,
                ignore_some: true,
                budget_rows: 7,
                seed: 50 + i as u64,
                small_bindings: false,
                z_loss: 1e-2,
                softcap: Some(3.0),
            });
        }
    }
}

#[test]
fn matmul_matches_the_reference_at_tile_edges() {
    for (m, n, k) in [
        (1, 1, 1),
        (65, 63, 5),
        (64, 64, 64),
        (3, 130, 8),
        (129, 1, 17),
        // K a multiple of 8: matmul_lanes.wgsl where it runs, past its 16 × 64 blocks.
        (65, 63, 24),
        (17, 200, 16),
        (1, 65, 8),
    ] {
        let mut rng = Rng::new((m * n * k) as u64);
        let a: Vec<f32> = (0..m * k).map(|_| rng.normal(1.0)).collect();
        let b: Vec<f32> = (0..n * k).map(|_| rng.normal(1.0)).collect();
        let ours = ctx()
            .matmul(Tensor::new(&a, &[m, k]), Tensor::new(&b, &[n, k]))
            .unwrap();
        assert_eq!(ours.shape, vec![m, n]);
        let truth: Vec<f64> = (0..m * n)
            .map(|e| {
                (0..k)
                    .map(|i| a[e / n * k + i] as f64 * b[e % n * k + i] as f64)
                    .sum()
            })
            .collect();
        assert_close(
            &format!("matmul {m}x{n}x{k}"),
            &ours.data,
            &truth,
            1e-5,
            1e-5,
        );
    }
}
