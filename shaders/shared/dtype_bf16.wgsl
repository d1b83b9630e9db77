// NAME: bfloat16 bit patterns, two per u32 word (low half first), four per vec2<u32>.
// A bf16 is the top half of an f32, so widening is a shift; arithmetic stays in f32.
@group(0) @binding(BINDING) var<storage, ACCESS> NAME: array<vec2<u32>>;

fn NAME_pair(w: u32) -> vec2<f32> {
    return vec2<f32>(bitcast<f32>(w << 16u), bitcast<f32>(w & 0xffff0000u));
}

fn NAME_4(j: u32) -> vec4<f32> {
    let w = NAME[j];
    return vec4<f32>(NAME_pair(w.x), NAME_pair(w.y));
}

fn NAME_1(i: u32) -> f32 {
    return NAME_pair(NAME[i >> 2u][(i >> 1u) & 1u])[i & 1u];
}

// Vec4s 2q and 2q + 1 (the loops' unit, shared/lse.wgsl's Pairs).
fn NAME_8(q: u32) -> Vec8 {
    return Vec8(NAME_4(2u * q), NAME_4(2u * q + 1u));
}
