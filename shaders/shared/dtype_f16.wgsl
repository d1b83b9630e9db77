// NAME: IEEE half values, two per u32 word, four per vec2<u32>, unpacked with
// unpack2x16float (core WGSL: no SHADER_F16 needed). Arithmetic stays in f32.
@group(0) @binding(BINDING) var<storage, ACCESS> NAME: array<vec2<u32>>;

fn NAME_4(j: u32) -> vec4<f32> {
    let w = NAME[j];
    return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));
}

fn NAME_1(i: u32) -> f32 {
    return unpack2x16float(NAME[i >> 2u][(i >> 1u) & 1u])[i & 1u];
}

// Vec4s 2q and 2q + 1 (the loops' unit, shared/lse.wgsl's Pairs).
fn NAME_8(q: u32) -> Vec8 {
    return Vec8(NAME_4(2u * q), NAME_4(2u * q + 1u));
}
