//! The shard protocol (`shard`) and its f64 oracle (`cpu::shard`) against the unsharded f64 reference: 1 to 4 shards of
//! uneven sizes (shards of one class, shards holding no target), every option and reduction,
//! for the loss and every shard's slice of the gradient; and the merge's determinism.

use proptest::prelude::*;
use wgpu_xent::cpu::shard::{grad, partials, Shard};
use wgpu_xent::cpu::wide::{cross_entropy, WideOptions, WideTarget};
use wgpu_xent::shard::{loss, merge, ShardTargets};
use wgpu_xent::{Reduction, Target, Tensor};

/// A small deterministic generator (xorshift), so that failing cases replay from their seed.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Clone, Debug)]
struct Case {
    n: usize,
    /// Each shard's classes, in order.
    sizes: Vec<usize>,
    probs: bool,
    weight: bool,
    smoothing: f64,
    z_loss: f64,
    softcap: Option<f64>,
    reduction: Reduction,
    seed: u64,
}

fn check(case: &Case) {
    let (n, c) = (case.n, case.sizes.iter().sum::<usize>());
    let mut g = Gen(case.seed | 1);
    let x: Vec<f64> = (0..n * c).map(|_| g.next() * 8.0 - 4.0).collect();
    let w: Vec<f64> = (0..c).map(|_| 0.5 + g.next()).collect();
    let t: Vec<i64> = (0..n)
        .map(|i| match i % 5 == 2 {
            true => -100,
            false => (g.next() * c as f64) as i64 % c as i64,
        })
        .collect();
    let p: Vec<f64> = {
        let raw: Vec<f64> = (0..n * c).map(|_| g.next()).collect();
        raw.chunks(c.max(1))
            .flat_map(|row| {
                let s: f64 = row.iter().sum();
                row.iter().map(move |v| v / s).collect::<Vec<_>>()
            })
            .collect()
    };
    let opts = WideOptions {
        weight: case.weight.then_some(&w[..]),
        label_smoothing: case.smoothing,
        z_loss: case.z_loss,
        softcap: case.softcap,
        reduction: case.reduction,
        ..Default::default()
    };
    let shape = [n, c];
    let rows = [n];
    let target = match case.probs {
        true => WideTarget::Probs(Tensor::new(&p, &shape)),
        false => WideTarget::Classes(Target::I64(Tensor::new(&t, &rows))),
    };
    let truth = cross_entropy(Tensor::new(&x, &shape), target, &opts, true, false).unwrap();
    // Each shard's logits (and probabilities), cut out of the whole.
    let mut starts = vec![0];
    for s in &case.sizes {
        starts.push(starts.last().unwrap() + s);
    }
    let slice = |v: &[f64], i: usize| -> Vec<f64> {
        (0..n)
            .flat_map(|r| v[r * c + starts[i]..r * c + starts[i + 1]].to_vec())
            .collect()
    };
    let xs: Vec<Vec<f64>> = (0..case.sizes.len()).map(|i| slice(&x, i)).collect();
    let ps: Vec<Vec<f64>> = (0..case.sizes.len()).map(|i| slice(&p, i)).collect();
    let shapes: Vec<[usize; 2]> = case.sizes.iter().map(|&s| [n, s]).collect();
    let shard = |i: usize| Shard {
        logits: Tensor::new(&xs[i], &shapes[i]),
        first_class: starts[i],
    };
    let targets = |i: usize| match case.probs {
        true => ShardTargets::Probs(&ps[i]),
        false => ShardTargets::Classes(&t),
    };
    let all: Vec<_> = (0..case.sizes.len())
        .map(|i| partials(&shard(i), c, &targets(i), &opts).unwrap())
        .collect();
    let merged = merge(&all).unwrap();
    assert_eq!(
        merged,
        merge(&all).unwrap(),
        "{case:?}: merge not repeatable"
    );
    let ours = loss(&merged, c, &targets(0), &opts).unwrap();
    let close = |what: &str, a: &[f64], b: &[f64]| {
        assert_eq!(a.len(), b.len(), "{case:?} {what}");
        for (i, (a, b)) in a.iter().zip(b).enumerate() {
            let ok = (a - b).abs() <= 1e-12 + 1e-10 * b.abs() || (a.is_nan() && b.is_nan());
            assert!(ok, "{case:?} {what}[{i}]: sharded {a} against {b}");
        }
    };
    close("loss", &ours.data, &truth.loss.data);
    let want = truth.grad.unwrap().data;
    for i in 0..case.sizes.len() {
        let ours = grad(&shard(i), c, &merged, &targets(i), &opts).unwrap();
        close(&format!("grad of shard {i}"), &ours.data, &slice(&want, i));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn sharded_equals_unsharded(
        n in 1usize..12,
        sizes in prop::collection::vec(1usize..9, 1..5),
        probs: bool, weight: bool, smooth: bool, z: bool, soft: bool,
        r in 0usize..3, seed: u64,
    ) {
        let case = Case {
            n,
            sizes,
            probs,
            weight,
            smoothing: if smooth { 0.1 } else { 0.0 },
            z_loss: if z { 1e-2 } else { 0.0 },
            softcap: soft.then_some(3.0),
            reduction: [Reduction::Mean, Reduction::Sum, Reduction::None][r],
            seed,
        };
        check(&case);
    }
}

#[test]
fn a_shard_of_one_class_and_shards_without_targets() {
    // 2 rows whose targets both fall in the last shard: shards 0 and 1 hold no target.
    for sizes in [vec![1, 1, 7], vec![3, 1, 2, 1], vec![5]] {
        check(&Case {
            n: 2,
            sizes,
            probs: false,
            weight: true,
            smoothing: 0.1,
            z_loss: 1e-3,
            softcap: Some(2.0),
            reduction: Reduction::Mean,
            seed: 7,
        });
    }
}

#[test]
fn bad_shards_are_refused() {
    let x = [0.0; 6];
    let opts = WideOptions::default();
    let past = Shard {
        logits: Tensor::new(&x, &[2, 3]),
        first_class: 2,
    };
    assert!(partials(&past, 4, &ShardTargets::Classes(&[0, 1]), &opts).is_err());
    let ok = Shard {
        logits: Tensor::new(&x, &[2, 3]),
        first_class: 0,
    };
    assert!(partials(&ok, 4, &ShardTargets::Classes(&[0, 4]), &opts).is_err());
    assert!(partials(&ok, 4, &ShardTargets::Classes(&[0]), &opts).is_err());
    assert!(partials(&ok, 4, &ShardTargets::Probs(&[0.5; 4]), &opts).is_err());
}
