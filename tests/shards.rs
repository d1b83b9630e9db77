//! cross_entropy over vocabulary shards (`Context::cross_entropy_sharded`) against the
//! unsharded call: 1 to 4 shards of uneven sizes on one, two or three devices (a device with
//! small bindings cuts its shard into row chunks), every option and reduction, loss and each
//! shard's slice of the gradient; and bit-for-bit repeatability.

mod common;

use common::{ctx, shard_devices};
use proptest::prelude::*;
use wgpu_xent::cpu::wide::WideOptions;
use wgpu_xent::shard::ShardTargets;
use wgpu_xent::{BackwardOptions, Context, ContextOptions, LossOptions, Reduction, Target, Tensor};
use wgpu_xent::{CrossEntropyShards, Grad};

#[derive(Clone, Debug)]
struct Case {
    n: usize,
    sizes: Vec<usize>,
    probs: bool,
    weight: bool,
    smoothing: f32,
    z_loss: f32,
    softcap: Option<f32>,
    reduction: Reduction,
    seed: u64,
    /// How many of `devices()` the shards run on.
    devices: usize,
}

fn check(case: &Case) {
    let (n, c) = (case.n, case.sizes.iter().sum::<usize>());
    let mut s = case.seed | 1;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32
    };
    let x: Vec<f32> = (0..n * c).map(|_| next() * 8.0 - 4.0).collect();
    let w: Vec<f32> = (0..c).map(|_| 0.5 + next()).collect();
    let t: Vec<i64> = (0..n)
        .map(|i| match i % 5 == 2 {
            true => -100,
            false => ((next() * c as f32) as i64).min(c as i64 - 1),
        })
        .collect();
    let p: Vec<f32> = (0..n)
        .flat_map(|_| {
            let row: Vec<f32> = (0..c).map(|_| next() + 0.01).collect();
            let sum: f32 = row.iter().sum();
            row.into_iter().map(move |v| v / sum)
        })
        .collect();
    let opts = LossOptions {
        weight: case.weight.then_some(&w[..]),
        label_smoothing: case.smoothing,
        z_loss: case.z_loss,
        softcap: case.softcap,
        reduction: case.reduction,
        ..Default::default()
    };
    let (shape, rows) = ([n, c], [n]);
    let target = match case.probs {
        true => Target::Probs(Tensor::new(&p, &shape)),
        false => Target::I64(Tensor::new(&t, &rows)),
    };
    let truth = ctx()
        .cross_entropy_backward(
            Tensor::new(&x, &shape),
            target,
            &opts,
            &BackwardOptions::default(),
        )
        .unwrap();
    let mut starts = vec![0];
    for s in &case.sizes {
        starts.push(starts.last().unwrap() + s);
    }
    let slice = |v: &[f32], i: usize| -> Vec<f32> {
        (0..n)
            .flat_map(|r| v[r * c + starts[i]..r * c + starts[i + 1]].to_vec())
            .collect()
    };
    let xs: Vec<Vec<f32>> = (0..case.sizes.len()).map(|i| slice(&x, i)).collect();
    let shapes: Vec<[usize; 2]> = case.sizes.iter().map(|&s| [n, s]).collect();
    let shards: Vec<Tensor<f32>> = xs
        .iter()
        .zip(&shapes)
        .map(|(x, s)| Tensor::new(x, s))
        .collect();
    let on = &shard_devices()[..case.devices];
    let (loss, grads) = Context::run_sharded(
        on,
        &CrossEntropyShards {
            shards: &shards,
            target,
            options: opts,
            grad: Grad::Returned,
        },
    )
    .unwrap();
    let (again, again_grads) = Context::run_sharded(
        on,
        &CrossEntropyShards {
            shards: &shards,
            target,
            options: opts,
            grad: Grad::Returned,
        },
    )
    .unwrap();
    let close = |what: &str, a: &[f32], b: &[f32]| {
        assert_eq!(a.len(), b.len(), "{case:?} {what}");
        for (i, (a, b)) in a.iter().zip(b).enumerate() {
            let ok = (a - b).abs() <= 2e-6 + 2e-5 * b.abs() || (a.is_nan() && b.is_nan());
            assert!(ok, "{case:?} {what}[{i}]: sharded {a} against {b}");
        }
    };
    close("loss", &loss.data, &truth.loss.data);
    assert_eq!(loss.shape, truth.loss.shape, "{case:?}");
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(&loss.data),
        bits(&again.data),
        "{case:?}: not repeatable"
    );
    let (grads, again_grads) = (grads.unwrap(), again_grads.unwrap());
    for (g, h) in grads.iter().zip(&again_grads) {
        assert_eq!(
            bits(&g.data),
            bits(&h.data),
            "{case:?}: gradient not repeatable"
        );
    }
    let want = truth.grad.unwrap().data;
    for (i, g) in grads.iter().enumerate() {
        assert_eq!(g.shape, vec![n, case.sizes[i]]);
        close(&format!("grad of shard {i}"), &g.data, &slice(&want, i));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn sharded_equals_unsharded(
        n in 1usize..40,
        sizes in prop::collection::vec(1usize..300, 1..5),
        probs: bool, weight: bool, smooth: bool, z: bool, soft: bool,
        r in 0usize..3, seed: u64, on in 1usize..4,
    ) {
        check(&Case {
            n,
            sizes,
            probs,
            weight,
            smoothing: if smooth { 0.1 } else { 0.0 },
            z_loss: if z { 1e-2 } else { 0.0 },
            softcap: soft.then_some(3.0),
            reduction: [Reduction::Mean, Reduction::Sum, Reduction::None][r],
            seed,
            devices: on,
        });
    }
}

#[test]
fn shards_of_one_class_and_shards_without_targets() {
    for sizes in [
        vec![1, 1, 70],
        vec![3, 1, 2, 1],
        vec![129],
        vec![5000, 7, 4096],
    ] {
        check(&Case {
            n: 3,
            sizes,
            probs: false,
            weight: true,
            smoothing: 0.1,
            z_loss: 1e-3,
            softcap: Some(2.0),
            reduction: Reduction::Mean,
            seed: 7,
            devices: 3,
        });
    }
}

#[test]
fn for_shards_takes_each_adapter_in_turn() {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let all = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    // The adapter a plain context takes first, then the others in wgpu's order.
    let key = |i: &wgpu::AdapterInfo| (i.name.clone(), i.backend, i.device);
    let first = key(ctx().adapter_info());
    let mut adapters = vec![first.clone()];
    adapters.extend(
        all.iter()
            .map(|a| key(&a.get_info()))
            .filter(|k| *k != first),
    );
    let count = adapters.len() + 1;
    let devices = Context::for_shards(count, ContextOptions::from_env().unwrap()).unwrap();
    assert_eq!(devices.len(), count);
    for (k, d) in devices.iter().enumerate() {
        let want = &adapters[k % adapters.len()];
        assert_eq!(&key(d.adapter_info()), want, "device {k}");
    }
}

#[test]
fn bad_shards_are_refused() {
    let x = [0.0f32; 6];
    let (t, opts) = ([0i64, 1], LossOptions::default());
    let target = Target::I64(Tensor::new(&t, &[2]));
    let on = std::slice::from_ref(ctx());
    let err = |shards: &[Tensor<f32>]| {
        Context::run_sharded(
            on,
            &CrossEntropyShards {
                shards,
                target,
                options: opts,
                grad: Grad::Returned,
            },
        )
        .unwrap_err()
        .to_string()
    };
    assert!(err(&[]).contains("at least one"));
    let uneven = [Tensor::new(&x[..4], &[2, 2]), Tensor::new(&x[..3], &[3, 1])];
    assert!(err(&uneven).contains("every shard is [2, Cs]"));
    let bad = [Tensor::new(&x[..2], &[2, 1])];
    assert!(err(&bad).contains("out of bounds"), "{}", err(&bad));
    assert!(Context::run_sharded(
        &[],
        &CrossEntropyShards {
            shards: &bad,
            target,
            options: opts,
            grad: Grad::None
        }
    )
    .is_err());
    // A shard's classes past C, even where first_class + Cs overflows.
    for first_class in [2, usize::MAX] {
        let shard = wgpu_xent::VocabShard {
            logits: Tensor::new(&x[..4], &[2, 2]),
            first_class,
            classes: 3,
            target,
            options: opts,
            grad: wgpu_xent::Grad::None,
        };
        let e = ctx().prepare(&shard);
        assert!(e.err().unwrap().to_string().contains("within C"));
        let wide = [0f64; 4];
        let cpu = wgpu_xent::cpu::shard::Shard {
            logits: Tensor::new(&wide, &[2, 2]),
            first_class,
        };
        let (classes, wide_opts) = (ShardTargets::Classes(&t), WideOptions::default());
        let e = wgpu_xent::cpu::shard::partials(&cpu, 3, &classes, &wide_opts);
        assert!(e.err().unwrap().to_string().contains("past C"));
    }
}
