// NAME: 16-bit values (IEEE half or bfloat16), two per u32 word (low half first), four per
// vec2<u32>. NAME_pair, which widens one word to two f32s, comes first: half_f16.wgsl or
// half_bf16.wgsl. Arithmetic stays in f32.
@group(0) @binding(BINDING) var<storage, ACCESS> NAME: array<vec2<u32>>;

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
