//! cross_entropy shards on device tensors (`ctx.prepare(&DeviceShard { .. })`): partials
//! recorded into our encoder, read from their documented `[2, N, 4]` layout, merged on the
//! host, written back as merged statistics, and each shard's gradient recorded; against the
//! unsharded host call, over uneven shards, weights, smoothing, z-loss, softcap, ignored rows
//! and every reduction; bitwise repeatable; and the refusals.

mod common;

use common::{ctx, Rng};
use wgpu_xent::shard::{loss_of_merged, merge, Partial};
use wgpu_xent::{
    BackwardOptions, DType, DeviceShard, DeviceTensor, Grad, LossOptions, Output, Reduction,
    Target, Tensor,
};

/// Each shard's partials read back, merged, written back, then each shard's gradient: the
/// loss and the gradient slices.
fn run(x: &[f32], t: &[i64], sizes: &[usize], opts: &LossOptions) -> (Output, Vec<Vec<f32>>) {
    let ctx = ctx();
    let (n, c) = (t.len(), sizes.iter().sum::<usize>());
    let target = DeviceTensor::from_host(ctx, t, &[n], DType::I64).unwrap();
    let (mut c0, mut shards) = (0, vec![]);
    for &cs in sizes {
        let part: Vec<f32> = (0..n)
            .flat_map(|r| x[r * c + c0..r * c + c0 + cs].to_vec())
            .collect();
        let logits = DeviceTensor::from_host(ctx, &part, &[n, cs], DType::F32).unwrap();
        let grad = DeviceTensor::zeros(ctx, &[n, cs]).unwrap();
        shards.push((logits, grad, c0));
        c0 += cs;
    }
    let prepared: Vec<_> = shards
        .iter()
        .map(|(logits, grad, first)| {
            let into = [grad];
            let call = DeviceShard {
                logits,
                target: &target,
                first_class: *first,
                classes: c,
                grad: Grad::Into(&into),
                options: *opts,
            };
            ctx.prepare(&call).unwrap()
        })
        .collect();
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    prepared
        .iter()
        .for_each(|p| p.record_partials(&mut encoder));
    ctx.queue().submit([encoder.finish()]);
    let partials: Vec<Vec<Partial>> = prepared
        .iter()
        .map(|p| {
            let v = p.partials().read_f32(ctx).unwrap();
            let plane = |r: usize, k: usize| -> [f32; 4] {
                let at = (k * n + r) * 4;
                [v[at], v[at + 1], v[at + 2], v[at + 3]]
            };
            (0..n)
                .map(|r| Partial::from_planes(plane(r, 0), plane(r, 1)))
                .collect()
        })
        .collect();
    let merged = merge(&partials).unwrap();
    let stats: Vec<f32> = merged.iter().flat_map(|p| p.stats()).collect();
    for p in &prepared {
        let m = p.merged();
        ctx.queue()
            .write_buffer(m.buffer(), m.offset(), bytemuck::cast_slice(&stats));
    }
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    for p in &prepared {
        p.record_grad(&mut encoder).unwrap();
    }
    ctx.queue().submit([encoder.finish()]);
    let rows = [n];
    let loss = loss_of_merged(&merged, c, Target::I64(Tensor::new(t, &rows)), opts).unwrap();
    let grads = shards
        .iter()
        .map(|(_, g, _)| g.read_f32(ctx).unwrap())
        .collect();
    (loss, grads)
}

fn check(n: usize, sizes: &[usize], opts: &LossOptions, seed: u64) {
    let c: usize = sizes.iter().sum();
    let mut rng = Rng::new(seed);
    let x: Vec<f32> = (0..n * c).map(|_| rng.normal(3.0)).collect();
    let t: Vec<i64> = (0..n)
        .map(|i| {
            if i % 5 == 4 {
                -100
            } else {
                rng.below(c) as i64
            }
        })
        .collect();
    let (shape, rows) = ([n, c], [n]);
    let truth = ctx()
        .cross_entropy_backward(
            Tensor::new(&x, &shape),
            Target::I64(Tensor::new(&t, &rows)),
            opts,
            &BackwardOptions::default(),
        )
        .unwrap();
    let (loss, grads) = run(&x, &t, sizes, opts);
    let (again, again_grads) = run(&x, &t, sizes, opts);
    let close = |what: &str, a: &[f32], b: &[f32]| {
        assert_eq!(a.len(), b.len(), "{what}");
        for (i, (a, b)) in a.iter().zip(b).enumerate() {
            assert!(
                (a - b).abs() <= 2e-6 + 2e-5 * b.abs(),
                "{sizes:?} {what}[{i}]: {a} against {b}"
            );
        }
    };
    close("loss", &loss.data, &truth.loss.data);
    let want = truth.grad.unwrap().data;
    let mut c0 = 0;
    for (k, (g, h)) in grads.iter().zip(&again_grads).enumerate() {
        let cs = sizes[k];
        let slice: Vec<f32> = (0..n)
            .flat_map(|r| want[r * c + c0..r * c + c0 + cs].to_vec())
            .collect();
        close(&format!("grad of shard {k}"), g, &slice);
        assert_eq!(g, h, "shard {k}: not repeatable");
        c0 += cs;
    }
    assert_eq!(loss.data, again.data);
}

#[test]
fn device_shards_equal_the_unsharded_call() {
    let w: Vec<f32> = (0..700).map(|i| 0.5 + (i % 7) as f32 / 7.0).collect();
    for (k, sizes) in [vec![1, 200], vec![300, 1, 99], vec![64, 128, 7, 500]]
        .iter()
        .enumerate()
    {
        let c: usize = sizes.iter().sum();
        for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
            let plain = LossOptions {
                reduction,
                ..Default::default()
            };
            check(13, sizes, &plain, k as u64);
            let every = LossOptions {
                weight: Some(&w[..c]),
                label_smoothing: 0.1,
                z_loss: 1e-3,
                softcap: Some(4.0),
                reduction,
                ..Default::default()
            };
            check(9, sizes, &every, 17 + k as u64);
        }
    }
}

#[test]
fn bad_device_shards_are_refused() {
    let ctx = ctx();
    let logits = DeviceTensor::zeros(ctx, &[4, 3]).unwrap();
    let target = DeviceTensor::from_host(ctx, &[0i64, 1, 2, 3], &[4], DType::I64).unwrap();
    let probs = DeviceTensor::zeros(ctx, &[4, 3]).unwrap();
    let opts = LossOptions::default();
    let call = DeviceShard {
        logits: &logits,
        target: &target,
        first_class: 2,
        classes: 5,
        grad: Grad::None,
        options: opts,
    };
    let err = |call: DeviceShard| ctx.prepare(&call).err().map(|e| e.to_string());
    assert!(err(call).is_none());
    assert!(err(DeviceShard {
        first_class: 3,
        ..call
    })
    .unwrap()
    .contains("within C"));
    assert!(err(DeviceShard {
        target: &probs,
        ..call
    })
    .unwrap()
    .contains("class indices"));
    let into_probs = [&probs];
    assert!(err(DeviceShard {
        grad: Grad::Into(&into_probs),
        ..call
    })
    .is_none());
    let wrong = DeviceTensor::zeros(ctx, &[4, 2]).unwrap();
    let into_wrong = [&wrong];
    assert!(err(DeviceShard {
        grad: Grad::Into(&into_wrong),
        ..call
    })
    .unwrap()
    .contains("[4, 3]"));
    let prepared = ctx.prepare(&call).unwrap();
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    assert!(prepared.record_grad(&mut encoder).is_err());
    // A row is one segment on the device: past what one workgroup walks, an error.
    let short = wgpu_xent::Context::with_options(wgpu_xent::ContextOptions {
        max_loop_trips: Some(8),
        ..wgpu_xent::ContextOptions::from_env().unwrap()
    })
    .unwrap();
    let long = DeviceTensor::zeros(&short, &[4, 100_000]).unwrap();
    let target = DeviceTensor::from_host(&short, &[0i64, 1, 2, 3], &[4], DType::I64).unwrap();
    let call = DeviceShard {
        logits: &long,
        target: &target,
        first_class: 0,
        classes: 100_000,
        grad: Grad::None,
        options: opts,
    };
    let e = short.prepare(&call).err().map(|e| e.to_string());
    assert!(e
        .unwrap_or_default()
        .contains("longer than one workgroup walks"));
}

/// The device checks its targets: a class past C (i32, u32 and i64 targets, each row of
/// them in turn) is an error naming that row, read after the partials ran; ignored rows
/// and classes of other shards are not.
#[test]
fn device_shards_check_their_targets() {
    let ctx = ctx();
    let logits = DeviceTensor::zeros(ctx, &[4, 3]).unwrap();
    let run = |target: &DeviceTensor| {
        let call = DeviceShard {
            logits: &logits,
            target,
            first_class: 2,
            classes: 5,
            grad: Grad::None,
            options: LossOptions::default(),
        };
        let prepared = ctx.prepare(&call).unwrap();
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        prepared.record_partials(&mut encoder);
        ctx.queue().submit([encoder.finish()]);
        prepared.check_targets().map_err(|e| e.to_string())
    };
    let good = [0i64, 4, -100, 1];
    assert_eq!(
        run(&DeviceTensor::from_host(ctx, &good, &[4], DType::I64).unwrap()),
        Ok(())
    );
    for row in 0..4 {
        let mut bad = good;
        bad[row] = 5;
        let e = run(&DeviceTensor::from_host(ctx, &bad, &[4], DType::I64).unwrap());
        let want = format!("Target 5 is out of bounds (at position [{row}]");
        assert!(e.as_ref().unwrap_err().starts_with(&want), "{e:?}");
        bad[row] = -7;
        let narrow: Vec<i32> = bad.iter().map(|&t| t as i32).collect();
        let e = run(&DeviceTensor::from_host(ctx, &narrow, &[4], DType::I32).unwrap());
        assert!(e.unwrap_err().starts_with("Target -7 is out of bounds"));
    }
    // Fixed again, the check passes: the flag is reset on every run.
    assert_eq!(
        run(&DeviceTensor::from_host(ctx, &good, &[4], DType::I64).unwrap()),
        Ok(())
    );
}
