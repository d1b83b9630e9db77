// The logits: f32 values read 8 at a time as vec4<u64> (SHADER_INT64), for CPU adapters:
// lavapipe runs every storage load as a loop over its SIMD lanes, one scalar load per
// component, so a load costs per instruction, not per byte (docs/PERFORMANCE.md). The binding
// must cover whole 32-byte units. The in-place gradient writes over it through
// logits_put_f32_wide.wgsl.
alias InputWord = vec4<u64>;

fn logits_half(w: u64) -> vec2<f32> {
    return vec2<f32>(bitcast<f32>(u32(w & 0xfffffffflu)), bitcast<f32>(u32(w >> 32u)));
}

fn logits_8(q: u32) -> Vec8 {
    let w = logits[q];
    return Vec8(
        vec4<f32>(logits_half(w.x), logits_half(w.y)),
        vec4<f32>(logits_half(w.z), logits_half(w.w)),
    );
}

fn logits_4(j: u32) -> vec4<f32> {
    let w = logits[j >> 1u];
    if (j & 1u) == 0u {
        return vec4<f32>(logits_half(w.x), logits_half(w.y));
    }
    return vec4<f32>(logits_half(w.z), logits_half(w.w));
}

fn logits_1(i: u32) -> f32 {
    return logits_half(logits[i >> 3u][(i >> 1u) & 3u])[i & 1u];
}
