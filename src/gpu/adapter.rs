//! Which adapter a [`super::Context`] uses: the one `WGPU_ADAPTER_NAME` names, else wgpu's
//! default for `WGPU_BACKEND` and `WGPU_POWER_PREF`.

use crate::error::{Result, XentError};

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

/// Every adapter wgpu finds on the instance's backends, in its order (the shards' devices).
pub(crate) async fn shard_adapters(instance: &wgpu::Instance) -> Result<Vec<wgpu::Adapter>> {
    let adapters = instance.enumerate_adapters(wgpu::Backends::all()).await;
    if adapters.is_empty() {
        return Err(XentError::NoAdapter {
            detail: format!("no adapter on backends {}", backends_from_env()),
        });
    }
    Ok(adapters)
}
