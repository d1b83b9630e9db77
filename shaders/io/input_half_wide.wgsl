// The logits: 16-bit values read 8 at a time, as vec4<u32>, for CPU adapters: lavapipe and
// llvmpipe pay per load instruction, not per byte (see input_f32_wide.wgsl), and this halves
// the loads of input_half.wgsl and of native vec4<f16>. half_pair comes from a widen_*.wgsl
// file, as there. The binding must cover whole 16-byte units.
alias InputWord = vec4<u32>;

fn logits_8(q: u32) -> Vec8 {
    let w = logits[q];
    return Vec8(
        vec4<f32>(half_pair(w.x), half_pair(w.y)),
        vec4<f32>(half_pair(w.z), half_pair(w.w)),
    );
}

fn logits_4(j: u32) -> vec4<f32> {
    let w = logits[j >> 1u];
    if (j & 1u) == 0u {
        return vec4<f32>(half_pair(w.x), half_pair(w.y));
    }
    return vec4<f32>(half_pair(w.z), half_pair(w.w));
}

fn logits_1(i: u32) -> f32 {
    return half_pair(logits[i >> 3u][(i >> 1u) & 3u])[i & 1u];
}
