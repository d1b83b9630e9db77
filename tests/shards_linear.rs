//! linear_cross_entropy over vocabulary shards (`ctx.prepare(&LinearShard { .. })`: each
//! shard a slice of the classifier and its bias) against the unsharded call: 2, 3 and 4
//! shards of uneven sizes (one of a single class, some holding no target), with and without
//! bias, every reduction and option; the input's gradient summed over the shards; and
//! bit-for-bit repeatability. The same for the fused device shards
//! (`ctx.prepare(&DeviceLinearShard { .. })`), their rows in chunks of a small budget, and
//! over 16-bit inputs; host shards past what a device shard takes. (tests/shards_linear_api.rs: the helper
//! over several devices, and the refusals.)

mod common;

use common::{ctx, Rng};
use proptest::prelude::*;
use std::sync::OnceLock;
use wgpu_xent::shard::{loss_of_merged, merge, Partial};
use wgpu_xent::{
    Context, ContextOptions, DType, DeviceLinearShard, DeviceTensor, Grad, Linear, LinearShard,
    LossOptions, Output, Reduction, Target, Tensor,
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
    /// The device shards' budget of logits, in bytes.
    budget: usize,
    /// The device shards' inputs in this 16-bit type (the values rounded to it for every
    /// call), or in f32.
    dtype: DType,
    /// The shards' context.
    on: On,
}

/// The context the shards run on (the unsharded call runs on the test's own).
#[derive(Clone, Copy, Debug)]
enum On {
    Default,
    /// One workgroup walks at most 8 loop trips of a row (long shards).
    ShortLoops,
    /// Bindings of 4 KiB (big inputs, many row chunks).
    SmallBindings,
}

fn on(case: &Case) -> &'static Context {
    static SHORT: OnceLock<Context> = OnceLock::new();
    static SMALL: OnceLock<Context> = OnceLock::new();
    let with = |options| Context::with_options(options).unwrap();
    match case.on {
        On::Default => ctx(),
        On::ShortLoops => SHORT.get_or_init(|| {
            with(ContextOptions {
                max_loop_trips: Some(8),
                ..wgpu_xent::ContextOptions::from_env().unwrap()
            })
        }),
        On::SmallBindings => SMALL.get_or_init(|| {
            with(ContextOptions {
                max_binding_bytes: Some(4096),
                ..wgpu_xent::ContextOptions::from_env().unwrap()
            })
        }),
    }
}

type Run = fn(&Case, &[f32], &[f32], &[f32], &[i64], &LossOptions) -> Vec<Output>;

/// Sums each shard's share of dX in shard order, and joins the loss and the slices of dW
/// and db.
fn joined(case: &Case, loss: Output, grads: Vec<[Vec<f32>; 3]>) -> Vec<Output> {
    let (n, d) = (case.n, case.d);
    let c: usize = case.sizes.iter().sum();
    let mut dx = vec![0f32; n * d];
    for g in &grads {
        dx.iter_mut().zip(&g[0]).for_each(|(a, v)| *a += v);
    }
    let out = |data: Vec<f32>, shape: Vec<usize>| Output { data, shape };
    let dw = grads.iter().flat_map(|g| g[1].clone()).collect();
    let db = grads.iter().flat_map(|g| g[2].clone()).collect();
    vec![
        loss,
        out(dx, vec![n, d]),
        out(dw, vec![c, d]),
        out(db, vec![c]),
    ]
}

/// The same over fused device shards: partials recorded into our encoder, read from their
/// `[2, N, 4]` layout, merged on the host, written back, and each shard's gradients recorded.
fn sharded_device(
    case: &Case,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    t: &[i64],
    opts: &LossOptions,
) -> Vec<Output> {
    let ctx = on(case);
    let (n, d) = (case.n, case.d);
    let c: usize = case.sizes.iter().sum();
    let up = |v: &[f32], shape: &[usize]| {
        let bits: Vec<u16> = match case.dtype {
            DType::BF16 => v
                .iter()
                .map(|&x| half::bf16::from_f32(x).to_bits())
                .collect(),
            DType::F16 => v
                .iter()
                .map(|&x| half::f16::from_f32(x).to_bits())
                .collect(),
            _ => return DeviceTensor::from_host(ctx, v, shape, DType::F32).unwrap(),
        };
        DeviceTensor::from_host(ctx, &bits, shape, case.dtype).unwrap()
    };
    let (input, target) = (
        up(x, &[n, d]),
        DeviceTensor::from_host(ctx, t, &[n], DType::I64).unwrap(),
    );
    let dx_all: Vec<DeviceTensor> = case
        .sizes
        .iter()
        .map(|_| DeviceTensor::zeros(ctx, &[n, d]).unwrap())
        .collect();
    let (mut c0, mut held) = (0, vec![]);
    for &cs in &case.sizes {
        let ws = up(&w[c0 * d..(c0 + cs) * d], &[cs, d]);
        let bs = up(&b[c0..c0 + cs], &[cs]);
        let grads = (
            DeviceTensor::zeros(ctx, &[cs, d]).unwrap(),
            DeviceTensor::zeros(ctx, &[cs]).unwrap(),
        );
        held.push((ws, bs, grads, c0));
        c0 += cs;
    }
    let prepared: Vec<_> = held
        .iter()
        .zip(&dx_all)
        .map(|((ws, bs, (dw, db), first), dx)| {
            let into: Vec<&DeviceTensor> = match case.bias {
                true => vec![dx, dw, db],
                false => vec![dx, dw],
            };
            let shard = DeviceLinearShard {
                input: &input,
                linear_weight: ws,
                linear_bias: case.bias.then_some(bs),
                target: &target,
                first_class: *first,
                classes: c,
                grad: Grad::Into(&into),
                budget: case.budget,
                options: *opts,
            };
            ctx.prepare(&shard).unwrap()
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
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    for p in &prepared {
        let m = p.merged();
        ctx.queue()
            .write_buffer(m.buffer(), m.offset(), bytemuck::cast_slice(&stats));
        p.record_grad(&mut encoder).unwrap();
    }
    ctx.queue().submit([encoder.finish()]);
    let rows = [n];
    let loss = loss_of_merged(&merged, c, Target::I64(Tensor::new(t, &rows)), opts).unwrap();
    let read = |t: &DeviceTensor| t.read_f32(ctx).unwrap();
    let grads = held
        .iter()
        .zip(&dx_all)
        .map(|((_, _, (dw, db), _), dx)| {
            [
                read(dx),
                read(dw),
                if case.bias { read(db) } else { vec![] },
            ]
        })
        .collect();
    joined(case, loss, grads)
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
            linear_weight: Tensor::new(&w[c0 * d..(c0 + cs) * d], &ws),
            linear_bias: case.bias.then_some(Tensor::new(&b[c0..c0 + cs], &bs)),
            first_class: c0,
            classes: c,
            target,
            options: *opts,
            grad: Grad::Returned,
            budget: wgpu_xent::DEFAULT_LINEAR_BUDGET,
        };
        prepared.push(on(case).prepare(&shard).unwrap());
        c0 += cs;
    }
    let partials: Vec<_> = prepared.iter().map(|p| p.partials().unwrap()).collect();
    let merged = merge(&partials).unwrap();
    let loss = loss_of_merged(&merged, c, target, opts).unwrap();
    let grads = prepared
        .iter()
        .map(|p| {
            let g = p.grad(&merged).unwrap();
            let db = g.grad_linear_bias.map_or(vec![], |b| b.data);
            [g.grad_input.data, g.grad_linear_weight.data, db]
        })
        .collect();
    joined(case, loss, grads)
}

fn check(case: &Case) {
    check_over(case, &[sharded, sharded_device]);
}

fn check_over(case: &Case, runs: &[Run]) {
    let mut rng = Rng::new(case.seed);
    let (n, d, c) = (case.n, case.d, case.sizes.iter().sum::<usize>());
    let round = |v: f32| match case.dtype {
        DType::BF16 => half::bf16::from_f32(v).to_f32(),
        DType::F16 => half::f16::from_f32(v).to_f32(),
        _ => v,
    };
    let x: Vec<f32> = (0..n * d).map(|_| round(rng.normal(1.0))).collect();
    let w: Vec<f32> = (0..c * d).map(|_| round(rng.normal(0.5))).collect();
    let b: Vec<f32> = (0..c).map(|_| round(rng.normal(1.0))).collect();
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
    if d == 0 && n > 0 && case.bias {
        // No features: every row's logits are the bias.
        let logits: Vec<f32> = (0..n).flat_map(|_| b.iter().copied()).collect();
        let ce = ctx()
            .cross_entropy(Tensor::new(&logits, &[n, c]), target, &opts)
            .unwrap();
        assert_eq!(ce.data, truth.loss.data, "{case:?}: the bias as logits");
    }
    for run in runs {
        let got = run(case, &x, &w, &b, &t, &opts);
        let again = run(case, &x, &w, &b, &t, &opts);
        compare(case, &got, &again, &truth);
    }
}

/// The sharded results against the unsharded call's, and a second run bit for bit.
fn compare(case: &Case, got: &[Output], again: &[Output], truth: &wgpu_xent::LinearOutput) {
    let close = |what: &str, a: &[f32], b: &[f32]| {
        assert_eq!(a.len(), b.len(), "{case:?} {what}");
        for (i, (a, b)) in a.iter().zip(b).enumerate() {
            let ok = (a - b).abs() <= 1e-5 + 1e-4 * b.abs() || (a.is_nan() && b.is_nan());
            assert!(ok, "{case:?} {what}[{i}]: sharded {a} against {b}");
        }
    };
    close("loss", &got[0].data, &truth.loss.data);
    assert_eq!(got[0].shape, truth.loss.shape);
    let want = |g: &Option<Output>| g.as_ref().unwrap().data.clone();
    close("grad_input", &got[1].data, &want(&truth.grad_input));
    close(
        "grad_linear_weight",
        &got[2].data,
        &want(&truth.grad_linear_weight),
    );
    if case.bias {
        close(
            "grad_linear_bias",
            &got[3].data,
            &want(&truth.grad_linear_bias),
        );
    }
    for (a, b) in got.iter().zip(again) {
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
        r in 0usize..3, seed: u64, budget in 1usize..8000,
    ) {
        check(&Case {
            n, d, sizes, bias, weight,
            smoothing: if smooth { 0.1 } else { 0.0 },
            z_loss: if z { 1e-2 } else { 0.0 },
            softcap: soft.then_some(3.0),
            reduction: [Reduction::Mean, Reduction::Sum, Reduction::None][r],
            seed,
            budget,
            dtype: DType::F32,
            on: On::Default,
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
            budget: 3000,
            dtype: DType::F32,
            on: On::Default,
        });
    }
}

#[test]
fn device_shards_widen_16_bit_inputs() {
    for (dtype, reduction) in [
        (DType::BF16, Reduction::Mean),
        (DType::F16, Reduction::None),
    ] {
        check(&Case {
            n: 9,
            d: 13,
            sizes: vec![3, 1, 60],
            bias: true,
            weight: false,
            smoothing: 0.1,
            z_loss: 0.0,
            softcap: None,
            reduction,
            seed: 3,
            budget: 200,
            dtype,
            on: On::Default,
        });
    }
}

/// Host shards past what a device shard takes: a shard longer than one workgroup walks
/// (its rows cut into segments), an input past one binding (the products' windows), no
/// rows and no features (the logits are the bias). And on the device, many rows of few
/// classes are cut into chunks whose partials fit one binding each.
#[test]
fn shards_past_the_fused_form_and_chunks_of_few_classes() {
    let case = |n, d, sizes, on| Case {
        n,
        d,
        sizes,
        bias: true,
        weight: true,
        smoothing: 0.1,
        z_loss: 1e-3,
        softcap: None,
        reduction: Reduction::Mean,
        seed: 5,
        budget: wgpu_xent::DEFAULT_LINEAR_BUDGET,
        dtype: DType::F32,
        on,
    };
    check_over(&case(6, 7, vec![300, 40], On::ShortLoops), &[sharded]);
    check_over(&case(40, 40, vec![5, 9], On::SmallBindings), &[sharded]);
    check(&case(300, 2, vec![3, 4, 5], On::SmallBindings));
    check_over(&case(5, 0, vec![3, 4], On::Default), &[sharded]);
    check_over(&case(0, 3, vec![3, 4], On::Default), &[sharded]);
}
