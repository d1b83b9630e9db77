//! linear_cross_entropy over device tensors (`ctx.prepare(&DeviceLinear::new(..))`): recorded
//! into our own encoder, it gives the host API's loss and gradients, writes the gradients into
//! our tensors (at offsets), reports a bad class target with its row, and refuses what it
//! does not take.

mod common;

use common::{assert_close, ctx, Rng};
use wgpu_xent::{
    Context, DType, DeviceLinear, DeviceTensor, Grad, Linear, LinearOutput, LossOptions,
    PreparedLinear, Reduction, Target, Tensor, XentError,
};

/// `data` in a new buffer, 64 floats (256 bytes) in: a tensor that does not start its buffer.
fn at_offset(ctx: &Context, data: &[f32], shape: &[usize]) -> DeviceTensor {
    let padded = [&[0.0f32; 64][..], data].concat();
    let whole = DeviceTensor::from_host(ctx, &padded, &[padded.len()], DType::F32).unwrap();
    DeviceTensor::from_buffer(ctx, whole.buffer(), 256, shape, DType::F32).unwrap()
}

/// Records the call into an encoder of ours, submits it, reads the loss.
fn run(ctx: &Context, step: &PreparedLinear) -> Vec<f32> {
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    step.record(&mut encoder);
    ctx.queue().submit([encoder.finish()]);
    step.read_loss().unwrap().data
}

struct Inputs {
    x: Vec<f32>,
    w: Vec<f32>,
    b: Vec<f32>,
    t: Vec<i64>,
    dims: (usize, usize, usize),
}

fn inputs(n: usize, d: usize, c: usize, seed: u64) -> Inputs {
    let mut rng = Rng::new(seed);
    Inputs {
        x: (0..n * d).map(|_| rng.normal(1.0)).collect(),
        w: (0..c * d).map(|_| rng.normal(0.5)).collect(),
        b: (0..c).map(|_| rng.normal(1.0)).collect(),
        t: (0..n)
            .map(|i| {
                if i % 4 == 1 {
                    -100
                } else {
                    rng.below(c) as i64
                }
            })
            .collect(),
        dims: (n, d, c),
    }
}

/// The host API's result for the same call.
fn host(i: &Inputs, opts: &LossOptions, budget: usize) -> LinearOutput {
    let (n, d, c) = i.dims;
    let (xs, ws, bs, ts) = ([n, d], [c, d], [c], [n]);
    let linear = Linear::new(Tensor::new(&i.x, &xs), Tensor::new(&i.w, &ws))
        .bias(Tensor::new(&i.b, &bs))
        .budget(budget)
        .lse(true);
    let target = Target::I64(Tensor::new(&i.t, &ts));
    ctx()
        .linear_cross_entropy_backward(linear, target, opts)
        .unwrap()
}

#[test]
fn device_calls_match_the_host_api_in_every_reduction() {
    let ctx = ctx();
    let i = inputs(37, 24, 72, 7);
    let (n, d, c) = i.dims;
    let budget = 5 * c * 4; // chunks of 5 rows: 8 chunks, the last of 2
    let cw: Vec<f32> = (0..c).map(|k| 0.5 + (k % 3) as f32 * 0.25).collect();
    let x = at_offset(ctx, &i.x, &[n, d]);
    let w = at_offset(ctx, &i.w, &[c, d]);
    let b = DeviceTensor::from_host(ctx, &i.b, &[c], DType::F32).unwrap();
    let t = DeviceTensor::from_host(ctx, &i.t, &[n], DType::I64).unwrap();
    let dx = DeviceTensor::zeros(ctx, &[n, d]).unwrap();
    let dw = at_offset(ctx, &vec![0.0; c * d], &[c, d]);
    let db = DeviceTensor::zeros(ctx, &[c]).unwrap();
    let grads = [&dx, &dw, &db];
    for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
        let opts = LossOptions {
            weight: Some(&cw),
            label_smoothing: 0.1,
            reduction,
            ..Default::default()
        };
        let call = DeviceLinear::new(&x, &w, &t)
            .bias(&b)
            .grad(Grad::Into(&grads))
            .budget(budget)
            .lse(true)
            .options(opts);
        let step = ctx.prepare(&call).unwrap();
        let loss = run(ctx, &step);
        let again = run(ctx, &step);
        let truth = host(&i, &opts, budget);
        let what = format!("{reduction:?}");
        let wide = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
        assert_close(&what, &loss, &wide(&truth.loss.data), 1e-5, 1e-4);
        assert_eq!(
            step.loss().unwrap().shape(),
            &truth.loss.shape[..],
            "{what}"
        );
        let pairs = [
            (&step.lse().unwrap(), truth.lse.unwrap()),
            (&dx, truth.grad_input.unwrap()),
            (&dw, truth.grad_linear_weight.unwrap()),
            (&db, truth.grad_linear_bias.unwrap()),
        ];
        for (ours, truth) in pairs {
            let ours = ours.read_f32(ctx).unwrap();
            assert_close(&what, &ours, &wide(&truth.data), 1e-5, 1e-4);
        }
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&loss), bits(&again), "{what}: not repeatable");
    }
}

#[test]
fn a_bad_class_target_is_reported_with_its_row() {
    let ctx = ctx();
    let mut i = inputs(20, 8, 16, 3);
    i.t[13] = 16;
    let (n, d, c) = i.dims;
    let x = DeviceTensor::from_host(ctx, &i.x, &[n, d], DType::F32).unwrap();
    let w = DeviceTensor::from_host(ctx, &i.w, &[c, d], DType::F32).unwrap();
    let t = DeviceTensor::from_host(ctx, &i.t, &[n], DType::I64).unwrap();
    let call = DeviceLinear::new(&x, &w, &t).budget(4 * c * 4);
    let step = ctx.prepare(&call).unwrap();
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    step.record(&mut encoder);
    ctx.queue().submit([encoder.finish()]);
    match step.read_loss() {
        Err(XentError::TargetOutOfBounds {
            position, value, ..
        }) => {
            assert_eq!((position, value), (vec![13], 16));
        }
        other => panic!("expected TargetOutOfBounds at row 13, got {other:?}"),
    }
}

#[test]
fn what_the_device_call_does_not_take_is_refused() {
    let ctx = ctx();
    let (n, d, c) = (4, 8, 5);
    let x = DeviceTensor::zeros(ctx, &[n, d]).unwrap();
    let x_int = DeviceTensor::zeros_of(ctx, &[n, d], DType::I32).unwrap();
    let w = DeviceTensor::zeros(ctx, &[c, d]).unwrap();
    let t = DeviceTensor::zeros_of(ctx, &[n], DType::I32).unwrap();
    let probs = DeviceTensor::zeros(ctx, &[n, c]).unwrap();
    let bad_dx = DeviceTensor::zeros(ctx, &[n, d + 1]).unwrap();
    let (dx, dw) = (
        DeviceTensor::zeros(ctx, &[n, d]).unwrap(),
        DeviceTensor::zeros(ctx, &[c, d]).unwrap(),
    );
    let opts = LossOptions::default();
    let err = |call: DeviceLinear| ctx.prepare(&call.options(opts)).unwrap_err();
    assert!(matches!(
        err(DeviceLinear::new(&x_int, &w, &t)),
        XentError::Unsupported(_)
    ));
    assert!(matches!(
        err(DeviceLinear::new(&x, &w, &probs)),
        XentError::Unsupported(_)
    ));
    let bad_grads = [&bad_dx, &dw];
    let bad = DeviceLinear::new(&x, &w, &t).grad(Grad::Into(&bad_grads));
    assert!(matches!(err(bad), XentError::InvalidShape(_)));
    let no_bias_grads = [&dx, &dw, &t];
    let no_bias = DeviceLinear::new(&x, &w, &t).grad(Grad::Into(&no_bias_grads));
    assert!(matches!(err(no_bias), XentError::InvalidArgument(_)));
    let step = ctx
        .prepare(&DeviceLinear::new(&x, &w, &t).options(opts))
        .unwrap();
    assert!(step.read_loss().is_err(), "read before any record");
}

/// bf16 and f16 device tensors are widened on the device exactly as the host API widens them
/// on the host: the same f32 values through the same program, so the same bits.
#[test]
fn half_tensors_give_the_host_apis_bits() {
    let ctx = ctx();
    let i = inputs(21, 16, 40, 11);
    let (n, d, c) = i.dims;
    let bf = |v: &[f32]| -> Vec<u16> {
        v.iter()
            .map(|&x| half::bf16::from_f32(x).to_bits())
            .collect()
    };
    let hf = |v: &[f32]| -> Vec<u16> {
        v.iter()
            .map(|&x| half::f16::from_f32(x).to_bits())
            .collect()
    };
    let (x16, w16, b16) = (bf(&i.x), hf(&i.w), bf(&i.b));
    let x = DeviceTensor::from_host(ctx, &x16, &[n, d], DType::BF16).unwrap();
    let w = DeviceTensor::from_host(ctx, &w16, &[c, d], DType::F16).unwrap();
    let b = DeviceTensor::from_host(ctx, &b16, &[c], DType::BF16).unwrap();
    let t = DeviceTensor::from_host(ctx, &i.t, &[n], DType::I64).unwrap();
    let dx = DeviceTensor::zeros(ctx, &[n, d]).unwrap();
    let dw = DeviceTensor::zeros(ctx, &[c, d]).unwrap();
    let db = DeviceTensor::zeros(ctx, &[c]).unwrap();
    let budget = 6 * c * 4;
    let grads = [&dx, &dw, &db];
    let opts = LossOptions::default();
    let call = DeviceLinear::new(&x, &w, &t)
        .bias(&b)
        .grad(Grad::Into(&grads))
        .budget(budget)
        .options(opts);
    let step = ctx.prepare(&call).unwrap();
    let loss = run(ctx, &step);
    let (xs, ws, bs, ts) = ([n, d], [c, d], [c], [n]);
    let host_x: Vec<half::bf16> = x16.iter().map(|&v| half::bf16::from_bits(v)).collect();
    let host_w: Vec<half::f16> = w16.iter().map(|&v| half::f16::from_bits(v)).collect();
    let host_b: Vec<half::bf16> = b16.iter().map(|&v| half::bf16::from_bits(v)).collect();
    let linear = Linear::new(Tensor::new(&host_x, &xs), Tensor::new(&host_w, &ws))
        .bias(Tensor::new(&host_b, &bs))
        .budget(budget);
    let truth = ctx
        .linear_cross_entropy_backward(linear, Target::I64(Tensor::new(&i.t, &ts)), &opts)
        .unwrap();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&loss), bits(&truth.loss.data), "loss");
    let pairs = [
        (&dx, truth.grad_input.unwrap(), "grad_input"),
        (&dw, truth.grad_linear_weight.unwrap(), "grad_linear_weight"),
        (&db, truth.grad_linear_bias.unwrap(), "grad_linear_bias"),
    ];
    for (ours, truth, what) in pairs {
        assert_eq!(
            bits(&ours.read_f32(ctx).unwrap()),
            bits(&truth.data),
            "{what}"
        );
    }
}

/// With no rows, the gradients are still written: zeros, not what the tensors held before.
#[test]
fn an_empty_batch_writes_zero_gradients() {
    let ctx = ctx();
    let (d, c) = (8, 5);
    let x = DeviceTensor::from_host::<f32>(ctx, &[], &[0, d], DType::F32).unwrap();
    let w = DeviceTensor::from_host(ctx, &vec![0.5f32; c * d], &[c, d], DType::F32).unwrap();
    let b = DeviceTensor::from_host(ctx, &vec![0.1f32; c], &[c], DType::F32).unwrap();
    let t = DeviceTensor::from_host::<i64>(ctx, &[], &[0], DType::I64).unwrap();
    let dx = DeviceTensor::from_host::<f32>(ctx, &[], &[0, d], DType::F32).unwrap();
    let dw = DeviceTensor::from_host(ctx, &vec![7.0f32; c * d], &[c, d], DType::F32).unwrap();
    let db = DeviceTensor::from_host(ctx, &vec![7.0f32; c], &[c], DType::F32).unwrap();
    let grads = [&dx, &dw, &db];
    for reduction in [Reduction::Sum, Reduction::Mean, Reduction::None] {
        let opts = LossOptions {
            reduction,
            ..Default::default()
        };
        let call = DeviceLinear::new(&x, &w, &t)
            .bias(&b)
            .grad(Grad::Into(&grads))
            .options(opts);
        let step = ctx.prepare(&call).unwrap();
        let loss = run(ctx, &step);
        match reduction {
            Reduction::Sum => assert_eq!(loss, vec![0.0]),
            Reduction::Mean => assert!(loss[0].is_nan(), "mean over no rows is NaN"),
            Reduction::None => assert!(loss.is_empty()),
        }
        assert!(
            dw.read_f32(ctx).unwrap().iter().all(|&v| v == 0.0),
            "{reduction:?}"
        );
        assert!(
            db.read_f32(ctx).unwrap().iter().all(|&v| v == 0.0),
            "{reduction:?}"
        );
    }
}

#[test]
fn a_gradient_sharing_an_inputs_buffer_is_refused() {
    let ctx = ctx();
    let (n, d, c) = (4, 64, 3);
    let both = DeviceTensor::zeros(ctx, &[2 * n * d]).unwrap();
    let x = DeviceTensor::from_buffer(ctx, both.buffer(), 0, &[n, d], DType::F32).unwrap();
    let dx = DeviceTensor::from_buffer(ctx, both.buffer(), (n * d * 4) as u64, &[n, d], DType::F32)
        .unwrap();
    let w = DeviceTensor::zeros(ctx, &[c, d]).unwrap();
    let dw = DeviceTensor::zeros(ctx, &[c, d]).unwrap();
    let t = DeviceTensor::zeros_of(ctx, &[n], DType::I32).unwrap();
    let grads = [&dx, &dw];
    let call = DeviceLinear::new(&x, &w, &t).grad(Grad::Into(&grads));
    let err = ctx.prepare(&call).unwrap_err();
    assert!(matches!(err, XentError::InvalidArgument(_)), "{err}");
}
