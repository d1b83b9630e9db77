// NAME: an f32 output written as vec4s (put8 writes vec4s 2q and 2q + 1). Rust substitutes
// NAME and BINDING (src/gpu/kernels.rs); out_f32_wide.wgsl defines the same functions.
@group(0) @binding(BINDING) var<storage, read_write> NAME: array<vec4<f32>>;

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
