//! linear_cross_entropy over vocabulary shards (`prepare_linear_cross_entropy_shard`: each
//! shard a slice of the classifier and its bias) against the unsharded call: 2, 3 and 4
//! shards of uneven sizes (one of a single class, some holding no target), with and without
//! bias, every reduction and option; the input's gradient summed over the shards; and
//! bit-for-bit repeatability.

mod common;

use common::{ctx, Rng};
use proptest::prelude::*;
use wgpu_xent::cpu::shard::merge;
use wgpu_xent::{
    loss_of_merged, Linear, LinearShard, LossOptions, Output, Reduction, Target, Tensor,
};

#[derive(Clone, Debug)]
struct Case {
    n: usize,
    d: usize,
    sizes: Vec<usize>,
    bias: bool,
    weight: bool,
    smoothing: f32,
    z_loss: f32,
    softcap: Option<f32>,
    reduction: Reduction,
    seed: u64,
}

/// The loss, dX, dW and db over the shards, merged in shard order.
fn sharded(
    case: &Case,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    t: &[i64],
    opts: &LossOptions,
) -> Vec<Output> {
    let (n, d) = (case.n, case.d);
    let c: usize = case.sizes.iter().sum();
    let (rows, xs) = ([n], [n, d]);
    let target = Target::I64(Tensor::new(t, &rows));
    let (mut c0, mut prepared) = (0, vec![]);
    for &cs in &case.sizes {
        let (ws, bs) = ([cs, d], [cs]);
        let shard = LinearShard {
            input: Tensor::new(x, &xs),
            weight: Tensor::new(&w[c0 * d..(c0 + cs) * d], &ws),
            bias: case.bias.then_some(Tensor::new(&b[c0..c0 + cs], &bs)),
            first_class: c0,
            classes: c,
        };
        prepared.push(
            ctx()
                .prepare_linear_cross_entropy_shard(shard, target, opts, true)
                .unwrap(),
        );
        c0 += cs;
    }
    let partials: Vec<_> = prepared.iter().map(|p| p.partials().unwrap()).collect();
    let merged = merge(&partials).unwrap();
    let loss = loss_of_merged(&merged, c, target, opts).unwrap();
    let grads: Vec<_> = prepared.iter().map(|p| p.grads(&merged).unwrap()).collect();
    let mut dx = vec![0f32; n * d];
    for g in &grads {
        dx.iter_mut().zip(&g.input.data).for_each(|(a, v)| *a += v);
    }
    let dw: Vec<f32> = grads.iter().flat_map(|g| g.weight.data.clone()).collect();
    let db: Vec<f32> = grads
        .iter()
        .flat_map(|g| g.bias.as_ref().map_or(vec![], |b| b.data.clone()))
        .collect();
    let out = |data: Vec<f32>, shape: Vec<usize>| Output { data, shape };
    vec![
        loss,
        out(dx, vec![n, d]),
        out(dw, vec![c, d]),
        out(db, vec![c]),
    ]
}

fn check(case: &Case) {
    let mut rng = Rng::new(case.seed);
    let (n, d, c) = (case.n, case.d, case.sizes.iter().sum::<usize>());
    let x: Vec<f32> = (0..n * d).map(|_| rng.normal(1.0)).collect();
    let w: Vec<f32> = (0..c * d).map(|_| rng.normal(0.5)).collect();
    let b: Vec<f32> = (0..c).map(|_| rng.normal(1.0)).collect();
    let cw: Vec<f32> = (0..c).map(|_| 0.5 + rng.uniform()).collect();
    let t: Vec<i64> = (0..n)
        .map(|i| {
            if i % 4 == 3 {
                -100
            } else {
                rng.below(c) as i64
            }
        })
        .collect();
    let opts = LossOptions {
        weight: case.weight.then_some(&cw[..]),
        label_smoothing: case.smoothing,
        z_loss: case.z_loss,
        softcap: case.softcap,
        reduction: case.reduction,
        ..Default::default()
    };
    let (xs, ws, bs, rows) = ([n, d], [c, d], [c], [n]);
    let mut linear = Linear::new(Tensor::new(&x, &xs), Tensor::new(&w, &ws));
    if case.bias {
        linear = linear.bias(Tensor::new(&b, &bs));
    }
    let target = Target::I64(Tensor::new(&t, &rows));
    let truth = ctx()
        .linear_cross_entropy_backward(linear, target, &opts)
        .unwrap();
    let got = sharded(case, &x, &w, &b, &t, &opts);
    let again = sharded(case, &x, &w, &b, &t, &opts);
    let close = |what: &str, a: &[f32], b: &[f32]| {
        assert_eq!(a.len(), b.len(), "{case:?} {what}");
        for (i, (a, b)) in a.iter().zip(b).enumerate() {
            let ok = (a - b).abs() <= 1e-5 + 1e-4 * b.abs() || (a.is_nan() && b.is_nan());
            assert!(ok, "{case:?} {what}[{i}]: sharded {a} against {b}");
        }
    };
    close("loss", &got[0].data, &truth.loss.data);
    assert_eq!(got[0].shape, truth.loss.shape);
    close("grad_input", &got[1].data, &truth.grad_input.unwrap().data);
    close(
        "grad_linear_weight",
        &got[2].data,
        &truth.grad_linear_weight.unwrap().data,
    );
    if case.bias {
        close(
            "grad_linear_bias",
            &got[3].data,
            &truth.grad_linear_bias.unwrap().data,
        );
    }
    for (a, b) in got.iter().zip(&again) {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a.data), bits(&b.data), "{case:?}: not repeatable");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    #[test]
    fn sharded_linear_equals_unsharded(
        n in 1usize..24, d in 1usize..40,
        sizes in prop::collection::vec(1usize..200, 2..5),
        bias: bool, weight: bool, smooth: bool, z: bool, soft: bool,
        r in 0usize..3, seed: u64,
    ) {
        check(&Case {
            n, d, sizes, bias, weight,
            smoothing: if smooth { 0.1 } else { 0.0 },
            z_loss: if z { 1e-2 } else { 0.0 },
            softcap: soft.then_some(3.0),
            reduction: [Reduction::Mean, Reduction::Sum, Reduction::None][r],
            seed,
        });
    }
}

#[test]
fn a_shard_of_one_class_and_shards_without_targets() {
    for (sizes, bias) in [
        (vec![1, 300], true),
        (vec![2, 1, 97], false),
        (vec![50, 1, 1, 3], true),
    ] {
        check(&Case {
            n: 5,
            d: 33,
            sizes,
            bias,
            weight: true,
            smoothing: 0.1,
            z_loss: 1e-3,
            softcap: Some(5.0),
            reduction: Reduction::Mean,
            seed: 11,
        });
    }
}

#[test]
fn the_helper_over_several_devices_equals_the_unsharded_call() {
    let devices = [
        ctx().clone(),
        wgpu_xent::Context::new().expect("a second device"),
    ];
    let mut rng = Rng::new(5);
    let (n, d, c) = (7, 19, 301);
    let x: Vec<f32> = (0..n * d).map(|_| rng.normal(1.0)).collect();
    let w: Vec<f32> = (0..c * d).map(|_| rng.normal(0.5)).collect();
    let b: Vec<f32> = (0..c).map(|_| rng.normal(1.0)).collect();
    let t: Vec<i64> = (0..n)
        .map(|i| if i == 3 { -100 } else { rng.below(c) as i64 })
        .collect();
    let (xs, ws, bs, rows) = ([n, d], [c, d], [c], [n]);
    let linear = Linear::new(Tensor::new(&x, &xs), Tensor::new(&w, &ws)).bias(Tensor::new(&b, &bs));
    let target = Target::I64(Tensor::new(&t, &rows));
    let opts = LossOptions {
        label_smoothing: 0.2,
        ..Default::default()
    };
    let truth = ctx()
        .linear_cross_entropy_backward(linear, target, &opts)
        .unwrap();
    for shards in 1..=3 {
        let on: Vec<_> = (0..shards).map(|k| devices[k % 2].clone()).collect();
        let got =
            wgpu_xent::Context::linear_cross_entropy_sharded(&on, linear, target, &opts, true)
                .unwrap();
        let pairs = [
            (&got.loss, &truth.loss),
            (
                got.grad_input.as_ref().unwrap(),
                truth.grad_input.as_ref().unwrap(),
            ),
            (
                got.grad_linear_weight.as_ref().unwrap(),
                truth.grad_linear_weight.as_ref().unwrap(),
            ),
            (
                got.grad_linear_bias.as_ref().unwrap(),
                truth.grad_linear_bias.as_ref().unwrap(),
            ),
        ];
        for (k, (a, b)) in pairs.iter().enumerate() {
            assert_eq!(a.shape, b.shape, "{shards} shards, output {k}");
            for (u, v) in a.data.iter().zip(&b.data) {
                assert!(
                    (u - v).abs() <= 1e-5 + 1e-4 * v.abs(),
                    "{shards} shards, output {k}: {u} against {v}"
                );
            }
        }
    }
}
