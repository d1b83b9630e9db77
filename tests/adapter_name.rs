//! A `WGPU_ADAPTER_NAME` that matches no adapter is an error naming the adapters there are,
//! not a panic inside wgpu (issue 11, D8). (Its own test binary: it sets the variable for the
//! whole process.)

#[test]
fn an_unmatched_adapter_name_is_an_error_naming_the_adapters() {
    std::env::set_var("WGPU_ADAPTER_NAME", "doesnotexist");
    let err = match wgpu_xent::Context::new() {
        Ok(ctx) => panic!("matched {:?}", ctx.adapter_info()),
        Err(e) => e.to_string(),
    };
    assert!(err.starts_with("no GPU adapter found"), "{err}");
    assert!(
        err.contains("\"doesnotexist\" matches none of the adapters"),
        "{err}"
    );
    // The adapter the other tests run on is among those named.
    std::env::remove_var("WGPU_ADAPTER_NAME");
    let ctx = wgpu_xent::Context::new().expect("an adapter");
    assert!(err.contains(&ctx.adapter_info().name), "{err}");
}
