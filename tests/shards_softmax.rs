//! log_softmax and softmax over vocabulary shards (`Context::softmax_sharded`, forward
//! and with `grad_out`) against the unsharded calls: 1 to 4 shards of uneven sizes
//! (shards of one class) on one, two and three devices (one with 4 KiB bindings, where a
//! shard's rows are cut into chunks and pieces), forward and backward; bit-for-bit repeatable.

mod common;

use common::{ctx, shard_devices, Rng};
use proptest::prelude::*;
use wgpu_xent::SoftmaxShards;
use wgpu_xent::{Context, Output, Tensor};

/// Classes `starts[i]..starts[i + 1]` of every row of `v` (`[n, c]`).
fn slice(v: &[f32], n: usize, c: usize, c0: usize, c1: usize) -> Vec<f32> {
    (0..n)
        .flat_map(|r| v[r * c + c0..r * c + c1].to_vec())
        .collect()
}

fn tensors<'a>(d: &'a [Vec<f32>], shapes: &'a [[usize; 2]]) -> Vec<Tensor<'a, f32>> {
    d.iter()
        .zip(shapes)
        .map(|(v, s)| Tensor::new(v, s))
        .collect()
}

fn check(n: usize, sizes: &[usize], on: usize, log: bool, seed: u64) {
    let c: usize = sizes.iter().sum();
    let mut rng = Rng::new(seed);
    let x: Vec<f32> = (0..n * c).map(|_| rng.normal(4.0)).collect();
    let gy: Vec<f32> = (0..n * c).map(|_| rng.normal(1.0)).collect();
    let shape = [n, c];
    let (y, g) = match log {
        true => {
            let y = ctx().log_softmax(Tensor::new(&x, &shape), 1).unwrap();
            let g = ctx().log_softmax_backward(
                Tensor::new(&gy, &shape),
                Tensor::new(&y.data, &shape),
                1,
            );
            (y, g.unwrap())
        }
        false => {
            let y = ctx().softmax(Tensor::new(&x, &shape), 1).unwrap();
            let g =
                ctx().softmax_backward(Tensor::new(&gy, &shape), Tensor::new(&y.data, &shape), 1);
            (y, g.unwrap())
        }
    };
    let mut starts = vec![0];
    sizes
        .iter()
        .for_each(|s| starts.push(starts.last().unwrap() + s));
    let cut = |v: &[f32]| -> Vec<Vec<f32>> {
        (0..sizes.len())
            .map(|k| slice(v, n, c, starts[k], starts[k + 1]))
            .collect()
    };
    let shapes: Vec<[usize; 2]> = sizes.iter().map(|&s| [n, s]).collect();
    let (xs, gys, ys) = (cut(&x), cut(&gy), cut(&y.data));
    let devices = &shard_devices()[..on];
    let run = || -> (Vec<Output>, Vec<Output>) {
        let out = Context::run_sharded(
            devices,
            &SoftmaxShards {
                shards: &tensors(&xs, &shapes),
                log,
                backward: None,
            },
        )
        .unwrap();
        let back = Context::run_sharded(
            devices,
            &SoftmaxShards {
                shards: &tensors(&ys, &shapes),
                log,
                backward: Some(&tensors(&gys, &shapes)),
            },
        );
        (out, back.unwrap())
    };
    let ((out, back), (out2, back2)) = (run(), run());
    // The backward's row sum runs in f64 here and in f32 unsharded: over hundreds of
    // upstream values of either sign, that is worth a few 1e-6.
    let close = |what: &str, a: &[f32], b: &[f32]| {
        assert_eq!(a.len(), b.len(), "{what}");
        for (i, (a, b)) in a.iter().zip(b).enumerate() {
            let ok = (a - b).abs() <= 1e-5 + 1e-4 * b.abs();
            assert!(
                ok,
                "{sizes:?} log={log} {what}[{i}]: sharded {a} against {b}"
            );
        }
    };
    let (want_y, want_g) = (cut(&y.data), cut(&g.data));
    for k in 0..sizes.len() {
        assert_eq!(out[k].shape, vec![n, sizes[k]]);
        close(&format!("output of shard {k}"), &out[k].data, &want_y[k]);
        close(&format!("gradient of shard {k}"), &back[k].data, &want_g[k]);
        assert_eq!(out[k].data, out2[k].data, "not repeatable");
        assert_eq!(back[k].data, back2[k].data, "not repeatable");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    #[test]
    fn sharded_softmax_equals_unsharded(
        n in 1usize..30,
        sizes in prop::collection::vec(1usize..400, 1..5),
        on in 1usize..4, log: bool, seed: u64,
    ) {
        check(n, &sizes, on, log, seed);
    }
}

#[test]
fn long_shards_and_shards_of_one_class() {
    for log in [true, false] {
        check(3, &[1, 5000, 2], 3, log, 9);
        check(2, &[70000, 1], 2, log, 10);
    }
}
