// 16-bit logits are never overwritten: the host refuses an in-place gradient for them
// (src/gpu/loss.rs), so these are never called. They let grad.wgsl's in-place branches
// compile.
fn NAME_put8(q: u32, w: Vec8) {
}

fn NAME_put4(j: u32, v: vec4<f32>) {
}

fn NAME_put1(i: u32, v: f32) {
}
