//! A training step that never copies the logits to the host: your own wgpu pipeline writes
//! the logits into your own buffer, wgpu-xent records the loss and the in-place gradient into
//! the same command encoder, and one scalar comes back.
//!
//!     cargo run --release --example device_resident

use wgpu_xent::{Context, ContextOptions, DType, DeviceTensor, Grad, LossCall, LossOptions};

/// Stands in for a model: writes logits[i] = sin(i · 0.1) · 3.
const MODEL: &str = r#"
@group(0) @binding(0) var<storage, read_write> logits: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x < arrayLength(&logits) {
        logits[id.x] = sin(f32(id.x) * 0.1) * 3.0;
    }
}
"#;

fn main() -> Result<(), wgpu_xent::XentError> {
    let (n, c) = (256usize, 8192usize);

    // Your device, queue and model, as you already have them.
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = pollster::block_on(wgpu::util::initialize_adapter_from_env_or_default(
        &instance, None,
    ))
    .map_err(|e| wgpu_xent::XentError::NoAdapter {
        detail: e.to_string(),
    })?;
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("my device"),
        required_features: wgpu::Features::empty(),
        required_limits: adapter.limits(),
        experimental_features: wgpu::ExperimentalFeatures::disabled(),
        memory_hints: wgpu::MemoryHints::Performance,
        trace: wgpu::Trace::Off,
    }))
    .map_err(|e| wgpu_xent::XentError::RequestDevice {
        adapter: adapter.get_info().name,
        detail: e.to_string(),
    })?;
    let logits_buf = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("logits"),
        size: (n * c * 4) as u64,
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("model"),
        source: wgpu::ShaderSource::Wgsl(MODEL.into()),
    });
    let model = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("model"),
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    });
    let model_bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &model.get_bind_group_layout(0),
        entries: &[wgpu::BindGroupEntry {
            binding: 0,
            resource: logits_buf.as_entire_binding(),
        }],
    });

    // wgpu-xent on the same device, over the same buffer.
    let ctx = Context::from_device(device.clone(), queue.clone(), ContextOptions::default())?;
    let targets: Vec<i32> = (0..n as i32).map(|i| (i * 97) % c as i32).collect();
    let target = DeviceTensor::from_host(&ctx, &targets, &[n], DType::I32)?;
    let logits = DeviceTensor::from_buffer(&ctx, &logits_buf, 0, &[n, c], DType::F32)?;
    let opts = LossOptions {
        label_smoothing: 0.1,
        ..Default::default()
    };
    let call = LossCall::cross_entropy(&logits, &target).options(opts);
    let step = ctx.prepare(&call.grad(Grad::InPlace))?;

    for iteration in 0..3 {
        let mut encoder = device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&model);
            pass.set_bind_group(0, &model_bind, &[]);
            pass.dispatch_workgroups((n * c).div_ceil(64) as u32, 1, 1);
        }
        step.record(&mut encoder); // loss + d(loss)/d(logits) over the logits, same encoder
        queue.submit(Some(encoder.finish()));
        let loss = step.read_loss()?; // the one scalar read back
        println!(
            "step {iteration}: loss {:.6} (gradient left in the logits buffer)",
            loss.scalar()
        );
    }
    Ok(())
}
