//! Property tests: the GPU against the CPU reference over random shapes and options.

mod common;

use common::{assert_close, ctx, widen, Rng};
use proptest::prelude::*;
use wgpu_xent::{cpu, LossOptions, Reduction, Target, Tensor};

/// Class counts around the workgroup and vector widths: 1, 2, 3, 2^k ± 1, and large.
fn classes() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(1usize),
        Just(2),
        Just(3),
        (2u32..12).prop_flat_map(|k| prop_oneof![
            Just((1usize << k) - 1),
            Just(1 << k),
            Just((1 << k) + 1)
        ]),
        Just(5000),
    ]
}

fn reduction() -> impl Strategy<Value = Reduction> {
    prop_oneof![
        Just(Reduction::None),
        Just(Reduction::Mean),
        Just(Reduction::Sum)
    ]
}

#[derive(Debug, Clone)]
struct LossCase {
    n: usize,
    c: usize,
    extra: Vec<usize>,
    weighted: bool,
    ignore_frac: f32,
    ignore_index: i64,
    reduction: Reduction,
    eps: f32,
    probs: bool,
    scale: f32,
    seed: u64,
}

fn loss_case() -> impl Strategy<Value = LossCase> {
    (
        (
            0usize..40,
            classes(),
            prop::collection::vec(1usize..5, 0..3),
        ),
        (
            any::<bool>(),
            prop_oneof![Just(0.0f32), Just(0.3), Just(1.0)],
            prop_oneof![Just(-100i64), Just(0)],
        ),
        (
            reduction(),
            prop_oneof![Just(0.0f32), Just(0.1), Just(1.0)],
            any::<bool>(),
        ),
        (
            prop_oneof![Just(0.1f32), Just(1.0), Just(30.0)],
            any::<u64>(),
        ),
    )
        .prop_map(
            |(
                (n, c, extra),
                (weighted, ignore_frac, ignore_index),
                (reduction, eps, probs),
                (scale, seed),
            )| LossCase {
                n,
                c,
                extra,
                weighted,
                ignore_frac,
                ignore_index,
                reduction,
                eps,
                probs,
                scale,
                seed,
            },
        )
}

fn check_loss_case(case: &LossCase, nll: bool) {
    let mut rng = Rng(case.seed);
    let mut shape = vec![case.n, case.c];
    shape.extend(&case.extra);
    let positions: usize = case.n * case.extra.iter().product::<usize>();
    let x = rng.logits(shape.iter().product(), case.scale);
    let weight: Vec<f32> = (0..case.c).map(|_| rng.uniform() + 0.1).collect();
    let mut tshape = vec![case.n];
    tshape.extend(&case.extra);
    let classes: Vec<i64> = (0..positions)
        .map(|_| {
            if rng.uniform() < case.ignore_frac {
                case.ignore_index
            } else {
                rng.below(case.c) as i64
            }
        })
        .collect();
    // Probabilities: positive, each position's column summing to 1.
    let mut probs: Vec<f32> = (0..x.len()).map(|_| rng.uniform()).collect();
    let inner: usize = case.extra.iter().product();
    for o in 0..case.n {
        for i in 0..inner {
            let idx = |c: usize| o * case.c * inner + c * inner + i;
            let s: f32 = (0..case.c).map(|c| probs[idx(c)]).sum();
            (0..case.c).for_each(|c| probs[idx(c)] /= s);
        }
    }
    let probs_mode = case.probs && !nll;
    let opts = LossOptions {
        weight: case.weighted.then_some(weight.as_slice()),
        ignore_index: if probs_mode { -100 } else { case.ignore_index },
        reduction: case.reduction,
        label_smoothing: if nll { 0.0 } else { case.eps },
        ..Default::default()
    };
    let target = if probs_mode {
        Target::Probs(Tensor::new(&probs, &shape))
    } else {
        Target::I64(Tensor::new(&classes, &tshape))
    };
    let input = Tensor::new(&x, &shape);
    let (gpu, reference) = if nll {
        (
            ctx().nll_loss(input, target, &opts),
            cpu::nll_loss(input, target, &opts),
        )
    } else {
        (
            ctx().cross_entropy(input, target, &opts),
            cpu::cross_entropy(input, target, &opts),
        )
    };
    let (gpu, reference) = (gpu.unwrap(), reference.unwrap());
    assert_eq!(gpu.shape, reference.shape);
    assert_close(
        &format!("{case:?}"),
        &gpu.data,
        &widen(&reference.data),
        2e-5,
        1e-4,
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn cross_entropy_matches_the_cpu_reference(case in loss_case()) {
        check_loss_case(&case, false);
    }

    #[test]
    fn nll_loss_matches_the_cpu_reference(case in loss_case()) {
        check_loss_case(&case, true);
    }

    #[test]
    fn softmax_ops_match_the_cpu_reference(
        shape in prop::collection::vec(1usize..6, 1..5),
        c in classes(),
        dim_seed in any::<u64>(),
        seed in any::<u64>(),
        scale in prop_oneof![Just(0.1f32), Just(1.0), Just(30.0)],
    ) {
        let mut rng = Rng(seed);
        let rank = shape.len() as i64;
        // The class count goes on the chosen axis; negative dims too.
        let dim = (dim_seed % (2 * rank as u64)) as i64 - rank;
        let mut shape = shape;
        shape[(dim + rank) as usize % rank as usize] = c.min(600);
        let x = rng.logits(shape.iter().product(), scale);
        let input = Tensor::new(&x, &shape);
        let gpu = ctx().log_softmax(input, dim).unwrap();
        let reference = cpu::log_softmax(input, dim).unwrap();
        assert_eq!(gpu.shape, shape);
        assert_close("log_softmax", &gpu.data, &widen(&reference.data), 2e-5, 1e-5);
        let gpu = ctx().softmax(input, dim).unwrap();
        let reference = cpu::softmax(input, dim).unwrap();
        assert_close("softmax", &gpu.data, &widen(&reference.data), 1e-6, 1e-4);
    }
}
