//! linear_cross_entropy over vocabulary shards, the rest of the API: the helper
//! (`LinearShards`) over two devices with class targets and probability targets, against the
//! unsharded call; and what the device and host shards refuse.

mod common;

use common::{ctx, Rng};
use wgpu_xent::LinearShards;
use wgpu_xent::{
    DType, DeviceLinearShard, DeviceTensor, Grad, Linear, LinearShard, LossOptions, Target, Tensor,
};
#[test]
fn the_helper_over_several_devices_equals_the_unsharded_call() {
    let devices = [
        ctx().clone(),
        wgpu_xent::Context::with_options(wgpu_xent::ContextOptions::from_env().unwrap())
            .expect("a second device"),
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
    // Probability targets, uploaded a chunk of rows at a time, and class targets.
    let q: Vec<f32> = (0..n * c).map(|_| rng.uniform()).collect();
    let q: Vec<f32> = q
        .chunks(c)
        .flat_map(|r| {
            r.iter()
                .map(|v| v / r.iter().sum::<f32>())
                .collect::<Vec<_>>()
        })
        .collect();
    let logits = [n, c];
    let targets = [
        Target::I64(Tensor::new(&t, &rows)),
        Target::Probs(Tensor::new(&q, &logits)),
    ];
    let opts = LossOptions {
        label_smoothing: 0.2,
        ..Default::default()
    };
    for (target, shards) in targets
        .into_iter()
        .flat_map(|t| (1..=3).map(move |s| (t, s)))
    {
        let truth = ctx()
            .linear_cross_entropy_backward(linear, target, &opts)
            .unwrap();
        let on: Vec<_> = (0..shards).map(|k| devices[k % 2].clone()).collect();
        let got = wgpu_xent::Context::run_sharded(
            &on,
            &LinearShards {
                linear,
                target,
                options: opts,
                grad: Grad::Returned,
            },
        )
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

#[test]
fn bad_device_linear_shards_are_refused() {
    let ctx = ctx();
    let t = |shape: &[usize]| DeviceTensor::zeros(ctx, shape).unwrap();
    let (x, w, b) = (t(&[4, 3]), t(&[2, 3]), t(&[2]));
    let target = DeviceTensor::from_host(ctx, &[0i64, 1, 2, 3], &[4], DType::I64).unwrap();
    let (dx, dw, db, probs) = (t(&[4, 3]), t(&[2, 3]), t(&[2]), t(&[4, 5]));
    let wide = t(&[2, 4]);
    let (all, twice, shared) = ([&dx, &dw, &db], [&dx, &dx], [&x, &dw]);
    let call = DeviceLinearShard {
        input: &x,
        linear_weight: &w,
        linear_bias: Some(&b),
        target: &target,
        first_class: 3,
        classes: 5,
        grad: Grad::Into(&all),
        budget: wgpu_xent::DEFAULT_LINEAR_BUDGET,
        options: LossOptions::default(),
    };
    let err = |call: DeviceLinearShard| ctx.prepare(&call).err().map(|e| e.to_string());
    assert_eq!(err(call), None);
    let refused = [
        (
            DeviceLinearShard {
                first_class: 4,
                ..call
            },
            "within C",
        ),
        (
            DeviceLinearShard {
                target: &probs,
                ..call
            },
            "class indices",
        ),
        (
            DeviceLinearShard {
                linear_weight: &wide,
                ..call
            },
            "linear_weight",
        ),
        (
            DeviceLinearShard {
                linear_bias: None,
                ..call
            },
            "without a bias",
        ),
        (
            DeviceLinearShard {
                grad: Grad::Into(&twice),
                ..call
            },
            "[2, 3]",
        ),
        (
            DeviceLinearShard {
                grad: Grad::Into(&shared),
                ..call
            },
            "shares a buffer",
        ),
    ];
    let sealed = DeviceTensor::from_buffer(
        ctx,
        &ctx.device().create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: 32,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        }),
        0,
        &[4],
        DType::I64,
    )
    .unwrap();
    let refused = refused.into_iter().chain([
        (
            DeviceLinearShard {
                first_class: usize::MAX,
                ..call
            },
            "within C",
        ),
        (
            DeviceLinearShard {
                target: &sealed,
                ..call
            },
            "COPY_SRC",
        ),
        (
            DeviceLinearShard {
                classes: 1 << 33,
                ..call
            },
            "2147483647",
        ),
    ]);
    for (call, words) in refused {
        let e = err(call).expect(words);
        assert!(e.contains(words), "{e}: wants {words}");
    }
    let no_grads = DeviceLinearShard {
        grad: Grad::None,
        options: Default::default(),
        ..call
    };
    let prepared = ctx.prepare(&no_grads).unwrap();
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    assert!(prepared.record_grad(&mut encoder).is_err());
    // The host shard too: C past what the device compares class indices in.
    let (xs, ws, ts) = ([0f32; 6], [0f32; 3], [0i64, 1]);
    let shard = LinearShard {
        input: Tensor::new(&xs, &[2, 3]),
        linear_weight: Tensor::new(&ws, &[1, 3]),
        linear_bias: None,
        first_class: 0,
        classes: usize::MAX,
        target: Target::I64(Tensor::new(&ts, &[2])),
        options: Default::default(),
        grad: Grad::Returned,
        budget: wgpu_xent::DEFAULT_LINEAR_BUDGET,
    };
    let e = ctx.prepare(&shard);
    assert!(e.err().unwrap().to_string().contains("2147483647"));
}

/// A device linear shard checks its targets in every chunk: a class past C is an error
/// naming its row (in the last chunk here), read after the partials ran.
#[test]
fn device_linear_shards_check_their_targets() {
    let ctx = ctx();
    let (x, w) = (
        DeviceTensor::zeros(ctx, &[9, 3]).unwrap(),
        DeviceTensor::zeros(ctx, &[2, 3]).unwrap(),
    );
    let run = |t: &[i64]| {
        let target = DeviceTensor::from_host(ctx, t, &[9], DType::I64).unwrap();
        let call = DeviceLinearShard {
            input: &x,
            linear_weight: &w,
            linear_bias: None,
            target: &target,
            first_class: 0,
            classes: 4,
            grad: Grad::None,
            // Two rows of logits a chunk: five chunks.
            budget: 16,
            options: LossOptions::default(),
        };
        let prepared = ctx.prepare(&call).unwrap();
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        prepared.record_partials(&mut encoder);
        ctx.queue().submit([encoder.finish()]);
        prepared.check_targets().map_err(|e| e.to_string())
    };
    let mut t = [0i64, 1, 2, 3, -100, 3, 2, 1, 0];
    assert_eq!(run(&t), Ok(()));
    t[8] = 4;
    let e = run(&t).unwrap_err();
    assert!(
        e.starts_with("Target 4 is out of bounds (at position [8]"),
        "{e}"
    );
}
