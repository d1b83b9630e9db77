// NAME: f32 values read 8 at a time, as vec4<u64> (SHADER_INT64), for CPU adapters: lavapipe
// runs every storage load as a loop over its SIMD lanes, one scalar load per component, so a
// load's cost is per instruction, not per byte. The read kernel over 131 MB took 26 ms with
// vec4<u64> loads against 35 ms with vec4<f32> (six interleaved runs each).
// The binding must cover whole 32-byte units. The in-place gradient writes over it through
// put_f32_wide.wgsl only where no single value is stored into a u64 (see there); elsewhere
// it keeps dtype_f32.wgsl.
@group(0) @binding(BINDING) var<storage, ACCESS> NAME: array<vec4<u64>>;

fn NAME_half(w: u64) -> vec2<f32> {
    return vec2<f32>(bitcast<f32>(u32(w & 0xfffffffflu)), bitcast<f32>(u32(w >> 32u)));
}

fn NAME_8(q: u32) -> Vec8 {
    let w = NAME[q];
    return Vec8(
        vec4<f32>(NAME_half(w.x), NAME_half(w.y)),
        vec4<f32>(NAME_half(w.z), NAME_half(w.w)),
    );
}

fn NAME_4(j: u32) -> vec4<f32> {
    let w = NAME[j >> 1u];
    if (j & 1u) == 0u {
        return vec4<f32>(NAME_half(w.x), NAME_half(w.y));
    }
    return vec4<f32>(NAME_half(w.z), NAME_half(w.w));
}

fn NAME_1(i: u32) -> f32 {
    return NAME_half(NAME[i >> 3u][(i >> 1u) & 3u])[i & 1u];
}
