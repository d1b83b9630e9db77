// The logits: IEEE half values read as vec4<f16> (SHADER_F16: Rust puts `enable f16;`
// first), widened to f32 for the arithmetic. Adapters without SHADER_F16 use input_half.wgsl.
alias InputWord = vec4<f16>;

fn logits_4(j: u32) -> vec4<f32> {
    return vec4<f32>(logits[j]);
}

fn logits_1(i: u32) -> f32 {
    return f32(logits[i >> 2u][i & 3u]);
}

// Vec4s 2q and 2q + 1 (the loops' unit, shared/lse.wgsl's Pairs).
fn logits_8(q: u32) -> Vec8 {
    return Vec8(logits_4(2u * q), logits_4(2u * q + 1u));
}
