// 16-bit logits are never overwritten: the host refuses an in-place gradient for them
// (src/gpu/ops/loss/plan.rs), so these are never called. They let grad.wgsl's in-place branches
// compile.
fn logits_put8(q: u32, w: Vec8) {
}

fn logits_put4(j: u32, v: vec4<f32>) {
}

fn logits_put1(i: u32, v: f32) {
}
