// NAME: 16-bit values read 8 at a time, as vec4<u32>, for CPU adapters: lavapipe and llvmpipe
// pay per load instruction, not per byte (see dtype_f32_wide.wgsl), and this halves the loads
// of dtype_half.wgsl and of native vec4<f16>. NAME_pair comes first, as there. The binding
// must cover whole 16-byte units.
@group(0) @binding(BINDING) var<storage, ACCESS> NAME: array<vec4<u32>>;

fn NAME_8(q: u32) -> Vec8 {
    let w = NAME[q];
    return Vec8(
        vec4<f32>(NAME_pair(w.x), NAME_pair(w.y)),
        vec4<f32>(NAME_pair(w.z), NAME_pair(w.w)),
    );
}

fn NAME_4(j: u32) -> vec4<f32> {
    let w = NAME[j >> 1u];
    if (j & 1u) == 0u {
        return vec4<f32>(NAME_pair(w.x), NAME_pair(w.y));
    }
    return vec4<f32>(NAME_pair(w.z), NAME_pair(w.w));
}

fn NAME_1(i: u32) -> f32 {
    return NAME_pair(NAME[i >> 3u][(i >> 1u) & 3u])[i & 1u];
}
