//! The pipeline cache: every bind layout made once, a shader module per source (family and
//! variant: the device's capabilities are fixed per context) and a pipeline per key, each
//! compiled on first use behind a lock.

use super::key::{KernelKey, Variant};
use super::source::{DeviceCaps, Family};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The compiled kernels of one device.
pub(crate) struct Kernels {
    caps: DeviceCaps,
    workgroup_size: u32,
    /// vec4s of workgroup memory a held row may use (`HOLD`).
    hold_vec4s: usize,
    layouts: HashMap<Family, (wgpu::BindGroupLayout, wgpu::PipelineLayout)>,
    modules: Mutex<HashMap<(Family, Variant), wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<KernelKey, Arc<wgpu::ComputePipeline>>>,
}

impl Kernels {
    /// Every family's bind-group and pipeline layout; no pipeline yet.
    pub fn new(device: &wgpu::Device, caps: DeviceCaps, workgroup_size: u32, hold: usize) -> Self {
        let layouts = Family::ALL
            .into_iter()
            .map(|family| {
                let label = format!("xent {family:?}");
                let bind = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some(&label),
                    entries: &family.layout_entries(),
                });
                let pipeline = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                    label: Some(&label),
                    bind_group_layouts: &[Some(&bind)],
                    immediate_size: 0,
                });
                (family, (bind, pipeline))
            })
            .collect();
        Self {
            caps,
            workgroup_size,
            hold_vec4s: hold,
            layouts,
            modules: Mutex::new(HashMap::new()),
            pipelines: Mutex::new(HashMap::new()),
        }
    }

    /// The bind-group layout of `family`.
    pub fn bind_layout(&self, family: Family) -> &wgpu::BindGroupLayout {
        &self.layouts[&family].0
    }

    /// The pipeline of `key`, compiled on first use. A compilation error reaches the error
    /// scope of the op that asked.
    pub fn pipeline(&self, device: &wgpu::Device, key: KernelKey) -> Arc<wgpu::ComputePipeline> {
        let mut pipelines = self.pipelines.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = pipelines.get(&key) {
            return p.clone();
        }
        let family = key.entry.family();
        let mut modules = self.modules.lock().unwrap_or_else(|e| e.into_inner());
        let module = modules.entry((family, key.variant)).or_insert_with(|| {
            let v = key.variant;
            device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(&format!("xent {family:?} {v:?}")),
                source: wgpu::ShaderSource::Wgsl(family.source(v, self.caps).into()),
            })
        });
        let mut constants = vec![("WG", self.workgroup_size as f64)];
        constants.extend(key.constants());
        if key.held {
            constants.push(("HOLD", self.hold_vec4s.max(1) as f64));
        }
        let pipeline = Arc::new(
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(key.entry.name()),
                layout: Some(&self.layouts[&family].1),
                module,
                entry_point: Some(key.entry.name()),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &constants,
                    // Every kernel writes workgroup memory before reading it.
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            }),
        );
        pipelines.insert(key, pipeline.clone());
        pipeline
    }
}
