// The in-place gradient's writes over f32 logits read 8 at a time (input_f32_wide.wgsl), as
// result_f32_wide.wgsl writes a result. put1 is a read-modify-write of a u64 that could race
// with another invocation's, so the host uses this file only where no put1 is reached:
// contiguous rows of C % 4 == 0 (`KernelKey::in_place`).
fn logits_bits(a: f32, b: f32) -> u64 {
    return u64(bitcast<u32>(a)) | (u64(bitcast<u32>(b)) << 32u);
}

fn logits_put8(q: u32, w: Vec8) {
    logits[q] = vec4<u64>(
        logits_bits(w.a.x, w.a.y),
        logits_bits(w.a.z, w.a.w),
        logits_bits(w.b.x, w.b.y),
        logits_bits(w.b.z, w.b.w),
    );
}

fn logits_put4(j: u32, v: vec4<f32>) {
    let k = 2u * (j & 1u);
    logits[j >> 1u][k] = logits_bits(v.x, v.y);
    logits[j >> 1u][k + 1u] = logits_bits(v.z, v.w);
}

fn logits_put1(i: u32, v: f32) {
    let c = (i >> 1u) & 3u;
    let w = logits[i >> 3u][c];
    if (i & 1u) == 0u {
        logits[i >> 3u][c] = (w & 0xffffffff00000000lu) | u64(bitcast<u32>(v));
    } else {
        logits[i >> 3u][c] = (w & 0xfffffffflu) | (u64(bitcast<u32>(v)) << 32u);
    }
}
