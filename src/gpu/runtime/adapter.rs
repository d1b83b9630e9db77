//! Which adapter a [`crate::gpu::Context`] uses: the one `WGPU_ADAPTER_NAME` names, else wgpu's
//! default for `WGPU_BACKEND` and `WGPU_POWER_PREF`; and the adapters vocabulary shards take
//! in turn ([`crate::gpu::Context::for_shards`]).

use crate::error::{Result, XentError};
use crate::gpu::runtime::context::Context;
use crate::ContextOptions;

/// The adapter named by `WGPU_ADAPTER_NAME` (a case-insensitive part of its name), else
/// wgpu's default. wgpu's own helper panics when the name matches nothing.
pub(crate) async fn choose_adapter(instance: &wgpu::Instance) -> Result<wgpu::Adapter> {
    let Ok(name) = std::env::var("WGPU_ADAPTER_NAME") else {
        let options = wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::from_env().unwrap_or_default(),
            ..Default::default()
        };
        return instance
            .request_adapter(&options)
            .await
            .map_err(|e| XentError::NoAdapter {
                detail: format!("{e}; backends searched: {}", backends_from_env()),
            });
    };
    let adapters = instance.enumerate_adapters(wgpu::Backends::all()).await;
    let names: Vec<String> = adapters
        .iter()
        .map(|a| format!("{:?} ({:?})", a.get_info().name, a.get_info().backend))
        .collect();
    let wanted = name.to_lowercase();
    adapters
        .into_iter()
        .find(|a| a.get_info().name.to_lowercase().contains(&wanted))
        .ok_or_else(|| XentError::NoAdapter {
            detail: format!(
                "WGPU_ADAPTER_NAME={name:?} matches none of the adapters wgpu sees on backends {}: {}",
                backends_from_env(),
                match names.is_empty() {
                    true => "none".to_string(),
                    false => names.join(", "),
                }
            ),
        })
}

pub(crate) fn backends_from_env() -> String {
    std::env::var("WGPU_BACKEND").unwrap_or_else(|_| "all (WGPU_BACKEND unset)".into())
}

/// The async form of [`super::context::Context::for_shards`].
pub async fn for_shards_async(count: usize, options: ContextOptions) -> Result<Vec<Context>> {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapters = shard_adapters(&instance).await?;
    let mut out = Vec::with_capacity(count);
    for k in 0..count {
        out.push(Context::on_adapter(&adapters[k % adapters.len()], options.clone()).await?);
    }
    Ok(out)
}

/// The adapters shards take in turn: the one [`choose_adapter`] picks first, then every other
/// adapter wgpu finds on the instance's backends (those `WGPU_ADAPTER_NAME` names, if set),
/// in wgpu's order.
pub(crate) async fn shard_adapters(instance: &wgpu::Instance) -> Result<Vec<wgpu::Adapter>> {
    let first = choose_adapter(instance).await?;
    let chosen = first.get_info();
    let wanted = std::env::var("WGPU_ADAPTER_NAME")
        .ok()
        .map(|n| n.to_lowercase());
    let mut out = vec![first];
    for adapter in instance.enumerate_adapters(wgpu::Backends::all()).await {
        let info = adapter.get_info();
        let same = (&info.name, info.backend, info.device)
            == (&chosen.name, chosen.backend, chosen.device);
        let named = wanted
            .as_ref()
            .is_none_or(|w| info.name.to_lowercase().contains(w));
        if !same && named {
            out.push(adapter);
        }
    }
    Ok(out)
}
