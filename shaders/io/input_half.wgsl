// The logits: 16-bit values (IEEE half or bfloat16), two per u32 word (low half first), four
// per vec2<u32>. half_pair, which widens one word to two f32s, comes from widen_f16.wgsl,
// widen_f16_bits.wgsl or widen_bf16.wgsl. Arithmetic stays in f32.
alias InputWord = vec2<u32>;

fn logits_4(j: u32) -> vec4<f32> {
    let w = logits[j];
    return vec4<f32>(half_pair(w.x), half_pair(w.y));
}

fn logits_1(i: u32) -> f32 {
    return half_pair(logits[i >> 2u][(i >> 1u) & 1u])[i & 1u];
}

// Vec4s 2q and 2q + 1 (the loops' unit, shared/lse.wgsl's Pairs).
fn logits_8(q: u32) -> Vec8 {
    return Vec8(logits_4(2u * q), logits_4(2u * q + 1u));
}
