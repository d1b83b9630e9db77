// The logits (binding 1, declared by each family as array<InputWord>): f32 values read as
// vec4s. Every input file defines the same functions: logits_8 (vec4s 2q, 2q + 1), logits_4
// (vec4 j) and logits_1 (element i), all as f32. Composed by src/gpu/kernels/source.rs.
alias InputWord = vec4<f32>;

fn logits_4(j: u32) -> vec4<f32> {
    return logits[j];
}

fn logits_1(i: u32) -> f32 {
    return logits[i >> 2u][i & 3u];
}

// Vec4s 2q and 2q + 1 (the loops' unit, shared/lse.wgsl's Pairs).
fn logits_8(q: u32) -> Vec8 {
    return Vec8(logits_4(2u * q), logits_4(2u * q + 1u));
}
