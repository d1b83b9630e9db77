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
    let ctx = Context::with_options(wgpu_xent::ContextOptions::from_env()?)?;
    let info = ctx.info();
    let (i, l) = (&info.adapter, &info.limits);
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
        info.tuning.workgroup_size
    )?;
    out!("  f16 inputs read by:               {}", info.f16_path)?;
    out!(
        "  reductions:                       {}",
        info.reduction_path
    )?;
    out!("  f32 inputs read:                  {}", info.f32_path)?;
    out!("  f16/bf16 inputs read:             {}", info.half_path)?;
    out!("  rows read twice:                  {}", info.hold_path)?;
    out!("  tuning (resolved once):           {:?}", info.tuning)?;
    let features = feature_names(adapter_features(&instance, i));
    out!("  adapter features ({}):", features.len())?;
    for line in wrap(&features, WIDTH) {
        out!("    {line}")?;
    }
    Ok(())
}

/// The width the feature list is wrapped to (its 4-space indent included).
const WIDTH: usize = 100;

/// The features' names, sorted (e.g. `SHADER_F16`, `TIMESTAMP_QUERY`).
fn feature_names(features: wgpu::Features) -> Vec<String> {
    let mut names: Vec<String> = features
        .iter_names()
        .map(|(name, _)| name.to_string())
        .collect();
    names.sort();
    names
}

/// `words` joined by spaces into lines of at most `width - 4` characters (a longer word
/// alone on its line).
fn wrap(words: &[String], width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for w in words {
        match lines.last_mut() {
            Some(line) if line.len() + 1 + w.len() <= width - 4 => {
                line.push(' ');
                line.push_str(w);
            }
            _ => lines.push(w.clone()),
        }
    }
    lines
}

fn adapter_features(instance: &wgpu::Instance, info: &wgpu::AdapterInfo) -> wgpu::Features {
    pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
        .into_iter()
        .find(|a| a.get_info() == *info)
        .map(|a| a.features())
        .unwrap_or_else(wgpu::Features::empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_are_sorted_and_wrapped() {
        let f = wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SHADER_F16;
        assert_eq!(feature_names(f), ["SHADER_F16", "TIMESTAMP_QUERY"]);
        let words: Vec<String> = (0..30).map(|i| format!("FEATURE_{i:02}")).collect();
        let lines = wrap(&words, 40);
        assert!(lines.iter().all(|l| l.len() <= 36), "{lines:?}");
        assert_eq!(lines.join(" "), words.join(" "));
    }
}
