//! With no usable backend, creating a context is an error that says how to get an adapter.
//! (Its own test binary: it changes WGPU_BACKEND for the whole process.)

#[test]
fn missing_adapter_is_an_error_that_says_how_to_install_one() {
    // No Linux machine has a Metal adapter; on macOS DX12 stands in for "none".
    let none = if cfg!(target_os = "macos") {
        "dx12"
    } else {
        "metal"
    };
    std::env::set_var("WGPU_BACKEND", none);
    std::env::remove_var("WGPU_ADAPTER_NAME");
    let err = match wgpu_xent::Context::new() {
        Ok(ctx) => panic!("found an adapter on {none}: {:?}", ctx.adapter_info()),
        Err(e) => e.to_string(),
    };
    assert!(err.starts_with("no GPU adapter found"), "{err}");
    assert!(
        err.contains("mesa-vulkan-drivers") && err.contains("llvmpipe"),
        "{err}"
    );
}
