//! The device-resident API on a device the test creates itself: logits written by the test's
//! own compute shader, the loss and the in-place gradient recorded into the same encoder, one
//! scalar read back. The logits buffer has no COPY_SRC or MAP_READ usage, so no host copy of
//! it can exist: the only way to the right loss is through the device. Also the checks on
//! device targets, weights and wrapped buffers, and a buffer of an odd number of vec4s.
//! (The device ops against the CPU reference and 16-bit outputs: tests/device_ops.rs.)

mod common;

use common::{assert_close, assert_loss_and_grad, widen};
use wgpu_xent::{
    cpu, BackwardOptions, Context, ContextOptions, DType, DeviceTensor, Grad, LossCall,
    LossOptions, Reduction, SoftmaxCall, Target, Tensor, XentError,
};

/// The test's own "model": logits[i] = ((i·7919) mod 1000) / 100 - 5, exact in f32 on both
/// sides, written by a compute shader.
const MODEL: &str = r#"
@group(0) @binding(0) var<storage, read_write> logits: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.x + id.y * 65535u * 64u;
    if i < arrayLength(&logits) {
        logits[i] = f32((i * 7919u) % 1000u) / 100.0 - 5.0;
    }
}
"#;

fn model_logits(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 / 100.0 - 5.0)
        .collect()
}

/// A device and queue made by the caller, not by wgpu-xent.
fn user_device() -> (wgpu::Device, wgpu::Queue) {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = pollster::block_on(wgpu::util::initialize_adapter_from_env_or_default(
        &instance, None,
    ))
    .expect("the device tests need an adapter");
    pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("user device"),
        required_features: wgpu::Features::empty(),
        required_limits: adapter.limits(),
        experimental_features: wgpu::ExperimentalFeatures::disabled(),
        memory_hints: wgpu::MemoryHints::Performance,
        trace: wgpu::Trace::Off,
    }))
    .expect("request_device")
}

/// Records the model's pass that fills `logits`.
fn record_model(
    device: &wgpu::Device,
    encoder: &mut wgpu::CommandEncoder,
    logits: &wgpu::Buffer,
    n: u32,
) {
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("model"),
        source: wgpu::ShaderSource::Wgsl(MODEL.into()),
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("model"),
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    });
    let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[wgpu::BindGroupEntry {
            binding: 0,
            resource: logits.as_entire_binding(),
        }],
    });
    let mut pass = encoder.begin_compute_pass(&Default::default());
    pass.set_pipeline(&pipeline);
    pass.set_bind_group(0, &bind, &[]);
    pass.dispatch_workgroups(n.div_ceil(64), 1, 1);
}

#[test]
fn loss_and_in_place_gradient_in_the_callers_encoder() {
    let (device, queue) = user_device();
    let ctx = Context::from_device(
        device.clone(),
        queue.clone(),
        ContextOptions::from_env().unwrap(),
    )
    .unwrap();
    let (n, c) = (37usize, 1001usize);
    // STORAGE only: this buffer cannot be copied or mapped to the host.
    let logits_buf = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("user logits"),
        size: ((n * c).div_ceil(4) * 16) as u64,
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    let targets: Vec<i64> = (0..n)
        .map(|i| {
            if i % 5 == 0 {
                -100
            } else {
                ((i * 31) % c) as i64
            }
        })
        .collect();
    let target = DeviceTensor::from_host(&ctx, &targets, &[n], DType::I64).unwrap();
    let logits = DeviceTensor::from_buffer(&ctx, &logits_buf, 0, &[n, c], DType::F32).unwrap();
    let opts = LossOptions {
        label_smoothing: 0.1,
        ..Default::default()
    };
    let step = ctx
        .prepare(
            &LossCall::cross_entropy(&logits, &target)
                .options(opts)
                .grad(Grad::InPlace),
        )
        .unwrap();

    let mut encoder = device.create_command_encoder(&Default::default());
    record_model(&device, &mut encoder, &logits_buf, (n * c) as u32);
    step.record(&mut encoder);
    queue.submit(Some(encoder.finish()));
    let loss = step.read_loss().unwrap();

    let host = model_logits(n * c);
    let (shape, tshape) = ([n, c], [n]);
    let reference = cpu::cross_entropy_backward(
        Tensor::new(&host, &shape),
        Target::I64(Tensor::new(&targets, &tshape)),
        &opts,
        &BackwardOptions::default(),
    )
    .unwrap();
    assert_eq!(loss.shape, Vec::<usize>::new());
    assert_close(
        "device loss",
        &loss.data,
        &[reference.loss.scalar() as f64],
        1e-5,
        1e-5,
    );

    // The in-place gradient cannot be read from a STORAGE-only buffer; the same step with the
    // gradient written into a readable tensor must give bitwise the same loss.
    let grad = DeviceTensor::zeros(&ctx, &[n, c]).unwrap();
    let step = ctx
        .prepare(
            &LossCall::cross_entropy(&logits, &target)
                .options(opts)
                .grad(Grad::Into(&[&grad])),
        )
        .unwrap();
    let mut encoder = device.create_command_encoder(&Default::default());
    record_model(&device, &mut encoder, &logits_buf, (n * c) as u32);
    step.record(&mut encoder);
    queue.submit(Some(encoder.finish()));
    let loss2 = step.read_loss().unwrap();
    assert_eq!(loss2.data[0].to_bits(), loss.data[0].to_bits());
    let g = grad.read_f32(&ctx).unwrap();
    let expect = widen(&reference.grad.unwrap().data);
    assert_close("device gradient", &g, &expect, 1e-6, 1e-4);
}

#[test]
fn out_of_range_device_target_is_reported_with_position_and_value() {
    let ctx = Context::with_options(ContextOptions::from_env().unwrap()).unwrap();
    let (n, c) = (6usize, 5usize);
    let x = model_logits(n * c);
    let logits = DeviceTensor::from_host(&ctx, &x, &[n, c], DType::F32).unwrap();
    for (dtype, targets) in [
        (DType::I64, vec![0i64, 1, 2, 7_000_000_000, 4, 9]),
        (DType::I32, vec![0, 1, -3, 1, 4, 9]),
    ] {
        let target = match dtype {
            DType::I64 => DeviceTensor::from_host(&ctx, &targets, &[n], dtype).unwrap(),
            _ => {
                let t32: Vec<i32> = targets.iter().map(|&t| t as i32).collect();
                DeviceTensor::from_host(&ctx, &t32, &[n], dtype).unwrap()
            }
        };
        let step = ctx
            .prepare(&LossCall::cross_entropy(&logits, &target))
            .unwrap();
        let err = step.run_timed().unwrap_err();
        let first = targets.iter().position(|&t| !(0..5).contains(&t)).unwrap();
        match err {
            XentError::TargetOutOfBounds {
                position,
                value,
                classes,
                ..
            } => {
                assert_eq!(
                    (position, value, classes),
                    (vec![first], targets[first], c),
                    "{dtype:?}"
                );
            }
            e => panic!("{dtype:?}: expected TargetOutOfBounds, got {e}"),
        }
    }
    // In range again: no error, and the flag is reset on every run.
    let good = DeviceTensor::from_host(&ctx, &[0i32, 1, 2, 3, 4, -100], &[n], DType::I32).unwrap();
    let opts = LossOptions {
        reduction: Reduction::Sum,
        ..Default::default()
    };
    let step = ctx
        .prepare(&LossCall::cross_entropy(&logits, &good).options(opts))
        .unwrap();
    assert!(step.run_timed().is_ok());
    assert!(step.run_timed().is_ok());
}

#[test]
fn wrapping_a_buffer_checks_usage_alignment_and_size() {
    let ctx = Context::with_options(ContextOptions::from_env().unwrap()).unwrap();
    let device = ctx.device();
    let make = |size, usage| {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size,
            usage,
            mapped_at_creation: false,
        })
    };
    let uniform = make(256, wgpu::BufferUsages::UNIFORM);
    let err = DeviceTensor::from_buffer(&ctx, &uniform, 0, &[4], DType::F32).unwrap_err();
    assert!(err.to_string().contains("lacks STORAGE"), "{err}");
    let storage = make(1024, wgpu::BufferUsages::STORAGE);
    let err = DeviceTensor::from_buffer(&ctx, &storage, 4, &[4], DType::F32).unwrap_err();
    assert!(
        err.to_string()
            .contains("min_storage_buffer_offset_alignment"),
        "{err}"
    );
    let err = DeviceTensor::from_buffer(&ctx, &storage, 0, &[300], DType::F32).unwrap_err();
    assert!(err.to_string().contains("needs 1200 bytes"), "{err}");
    assert!(DeviceTensor::from_buffer(&ctx, &storage, 0, &[16, 16], DType::F32).is_ok());
}

#[test]
fn device_weights_are_checked() {
    let ctx = Context::with_options(ContextOptions::from_env().unwrap()).unwrap();
    let (n, c) = (4usize, 10usize);
    let logits = DeviceTensor::zeros(&ctx, &[n, c]).unwrap();
    let target = DeviceTensor::zeros_of(&ctx, &[n], DType::I32).unwrap();
    let short = DeviceTensor::zeros(&ctx, &[c - 1]).unwrap();
    let ints = DeviceTensor::zeros_of(&ctx, &[c], DType::I32).unwrap();
    let good = DeviceTensor::zeros(&ctx, &[c]).unwrap();
    let call = LossCall::cross_entropy(&logits, &target);
    let err = ctx.prepare(&call.device_weight(&short)).unwrap_err();
    assert!(
        matches!(err, XentError::WeightShape { classes: 10, .. }),
        "{err}"
    );
    let err = ctx.prepare(&call.device_weight(&ints)).unwrap_err();
    assert!(err.to_string().contains("weights must be f32"), "{err}");
    let host = [1.0f32; 10];
    let opts = LossOptions {
        weight: Some(&host),
        ..Default::default()
    };
    let err = ctx
        .prepare(&call.device_weight(&good).options(opts))
        .unwrap_err();
    assert!(err.to_string().contains("weights given twice"), "{err}");
    let err = ctx
        .prepare(&LossCall::nll_loss(&logits, &target).lse(true))
        .unwrap_err();
    assert!(err.to_string().contains("no log-sum-exp"), "{err}");
}

/// A user's f32 buffer that ends 16 bytes into a 32-byte unit: where f32 inputs are read 8 at
/// a time (CPU adapters), such a binding cannot be, and the call reads it 4 at a time instead.
#[test]
fn logits_buffer_of_an_odd_number_of_vec4s_is_read_correctly() {
    let ctx = Context::with_options(ContextOptions::from_env().unwrap()).unwrap();
    // 3 × 12 = 36 floats: 144 bytes, nine vec4s.
    let (n, c) = (3usize, 12usize);
    let x = model_logits(n * c);
    let buffer = ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("odd vec4s"),
        size: (n * c * 4) as u64,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    ctx.queue()
        .write_buffer(&buffer, 0, bytemuck::cast_slice(&x));
    let logits = DeviceTensor::from_buffer(&ctx, &buffer, 0, &[n, c], DType::F32).unwrap();
    let t = [1i32, 5, 11];
    let target = DeviceTensor::from_host(&ctx, &t, &[n], DType::I32).unwrap();
    let grad = DeviceTensor::zeros(&ctx, &[n, c]).unwrap();
    let grads = [&grad];
    let call = LossCall::cross_entropy(&logits, &target).grad(Grad::Into(&grads));
    let step = ctx.prepare(&call).unwrap();
    let (out, _) = step.run_timed().unwrap();
    let reference = cpu::cross_entropy_backward(
        Tensor::new(&x, &[n, c]),
        Target::I32(Tensor::new(&t, &[n])),
        &Default::default(),
        &Default::default(),
    )
    .unwrap();
    assert_loss_and_grad(
        "odd vec4s",
        (&out.loss.data, &grad.read_f32(&ctx).unwrap()),
        reference,
        (1e-6, 1e-6),
        (1e-7, 1e-5),
    );
    let p = ctx.prepare(&SoftmaxCall::log_softmax(&logits, 1)).unwrap();
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    p.record(&mut encoder);
    ctx.queue().submit(Some(encoder.finish()));
    let reference = cpu::log_softmax(Tensor::new(&x, &[n, c]), 1).unwrap();
    let ours = p.output().read_f32(&ctx).unwrap();
    assert_close("odd vec4s", &ours, &widen(&reference.data), 1e-6, 1e-6);
}
