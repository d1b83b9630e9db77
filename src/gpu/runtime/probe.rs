//! The subgroup layout probe (shaders/probe_subgroups.wgsl): run once per [`Context`] on a
//! device with `SUBGROUP`, before any reduction pipeline is built.

use crate::error::Result;
use crate::gpu::runtime::context::Context;
use crate::gpu::runtime::readback::{copy_to, staging, submit_and_read};
use crate::gpu::runtime::scope::scoped;

/// Workgroups the probe runs: several, in case a device lays out later ones differently.
const WORKGROUPS: u32 = 4;

/// Whether every subgroup of a workgroup of the context's size is a run of consecutive
/// `local_invocation_index` values starting at a multiple of its width, as the subgroup
/// reductions assume (WGSL does not promise it).
pub(crate) async fn probe_subgroup_layout(ctx: &Context) -> Result<bool> {
    let wg = ctx.workgroup_size();
    let len = (WORKGROUPS * wg) as u64 * 4;
    scoped(ctx, async {
        let module = ctx
            .device()
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some("xent subgroup probe"),
                source: wgpu::ShaderSource::Wgsl(
                    include_str!("../../../shaders/probe_subgroups.wgsl").into(),
                ),
            });
        let pipeline = ctx
            .device()
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some("xent subgroup probe"),
                layout: None,
                module: &module,
                entry_point: Some("probe"),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &[("WG", wg as f64)],
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
        let out = ctx.shared.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("xent subgroup probe"),
            size: len,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let bind = ctx
            .shared
            .device
            .create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("xent subgroup probe"),
                layout: &pipeline.get_bind_group_layout(0),
                entries: &[wgpu::BindGroupEntry {
                    binding: 0,
                    resource: out.as_entire_binding(),
                }],
            });
        let mut encoder = ctx
            .shared
            .device
            .create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind, &[]);
            pass.dispatch_workgroups(WORKGROUPS, 1, 1);
        }
        let staging = staging(ctx, len);
        copy_to(&mut encoder, &out, 0, &staging);
        let words = submit_and_read(ctx, encoder, &[&staging]).await?;
        let words = words.into_iter().next().unwrap_or_default();
        Ok(words.len() == (WORKGROUPS * wg) as usize && words.iter().all(|w| w.to_bits() == 1))
    })
    .await
}
