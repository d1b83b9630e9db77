// Writes of f32 values into NAME, an array<vec4<f32>> declared before this file (an output,
// or the logits the in-place gradient overwrites): put8 writes vec4s 2q and 2q + 1. Rust
// substitutes NAME (src/gpu/kernels.rs); put_f32_wide.wgsl defines the same functions.
fn NAME_put8(q: u32, w: Vec8) {
    NAME[2u * q] = w.a;
    NAME[2u * q + 1u] = w.b;
}

fn NAME_put4(j: u32, v: vec4<f32>) {
    NAME[j] = v;
}

fn NAME_put1(i: u32, v: f32) {
    NAME[i >> 2u][i & 3u] = v;
}
