// NAME: f32 values, read as vec4s. Rust substitutes NAME, BINDING and ACCESS
// (src/gpu/kernels.rs); the f16 and bf16 files define the same functions.
@group(0) @binding(BINDING) var<storage, ACCESS> NAME: array<vec4<f32>>;

fn NAME_4(j: u32) -> vec4<f32> {
    return NAME[j];
}

fn NAME_1(i: u32) -> f32 {
    return NAME[i >> 2u][i & 3u];
}

// Vec4s 2q and 2q + 1 (the loops' unit, shared/lse.wgsl's Pairs).
fn NAME_8(q: u32) -> Vec8 {
    return Vec8(NAME_4(2u * q), NAME_4(2u * q + 1u));
}
