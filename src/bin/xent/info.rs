//! `xent info`.

use crate::error::Result;
use wgpu_xent::Context;

pub fn run() -> Result<()> {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    out!("adapters wgpu sees ({}):", adapters.len())?;
    for a in &adapters {
        let i = a.get_info();
        out!(
            "  {} ({:?}, {:?}, driver {} {})",
            i.name,
            i.backend,
            i.device_type,
            i.driver,
            i.driver_info
        )?;
    }
    let ctx = Context::new()?;
    let i = ctx.adapter_info();
    let l = ctx.limits();
    out!("xent uses: {}", i.name)?;
    out!("  backend:                          {:?}", i.backend)?;
    out!("  device type:                      {:?}", i.device_type)?;
    out!(
        "  driver:                           {} {}",
        i.driver,
        i.driver_info
    )?;
    out!(
        "  max_storage_buffer_binding_size:  {}",
        l.max_storage_buffer_binding_size
    )?;
    out!("  max_buffer_size:                  {}", l.max_buffer_size)?;
    out!(
        "  min_storage_buffer_offset_align.: {}",
        l.min_storage_buffer_offset_alignment
    )?;
    out!(
        "  max_compute_workgroup_storage:    {}",
        l.max_compute_workgroup_storage_size
    )?;
    out!(
        "  max_compute_invocations_per_wg:   {}",
        l.max_compute_invocations_per_workgroup
    )?;
    out!(
        "  max_compute_workgroups_per_dim:   {}",
        l.max_compute_workgroups_per_dimension
    )?;
    out!(
        "  workgroup size used:              {}",
        ctx.workgroup_size()
    )?;
    out!("  f16 inputs read by:               {}", ctx.f16_path())?;
    out!(
        "  reductions:                       {}",
        ctx.reduction_path()
    )?;
    out!("  f32 inputs read:                  {}", ctx.f32_path())?;
    out!("  f16/bf16 inputs read:             {}", ctx.half_path())?;
    out!("  rows read twice:                  {}", ctx.hold_path())?;
    out!("  tuning (resolved once):           {:?}", ctx.tuning())?;
    out!(
        "  adapter features:                 {:?}",
        adapter_features(&instance, i)
    )?;
    Ok(())
}

fn adapter_features(instance: &wgpu::Instance, info: &wgpu::AdapterInfo) -> wgpu::Features {
    pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
        .into_iter()
        .find(|a| a.get_info() == *info)
        .map(|a| a.features())
        .unwrap_or_else(wgpu::Features::empty)
}
