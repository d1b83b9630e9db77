// Writes of f32 values into NAME, an array<vec4<u64>> declared before this file, 8 values a
// store (SHADER_INT64, CPU adapters: lavapipe pays per store instruction, not per byte; see
// dtype_f32_wide.wgsl). put1 is a read-modify-write of a u64 that could race with another
// invocation's, so the host uses this file only where no put1 is reached: for outputs, and
// for the logits the in-place gradient overwrites, of contiguous rows of C % 4 == 0 classes
// (every row starts and ends on a vec4; `Context::with_wide_output`). The other uses compile
// so that the shared code's strided branches type-check.
fn NAME_bits(a: f32, b: f32) -> u64 {
    return u64(bitcast<u32>(a)) | (u64(bitcast<u32>(b)) << 32u);
}

fn NAME_put8(q: u32, w: Vec8) {
    NAME[q] = vec4<u64>(
        NAME_bits(w.a.x, w.a.y),
        NAME_bits(w.a.z, w.a.w),
        NAME_bits(w.b.x, w.b.y),
        NAME_bits(w.b.z, w.b.w),
    );
}

fn NAME_put4(j: u32, v: vec4<f32>) {
    let k = 2u * (j & 1u);
    NAME[j >> 1u][k] = NAME_bits(v.x, v.y);
    NAME[j >> 1u][k + 1u] = NAME_bits(v.z, v.w);
}

fn NAME_put1(i: u32, v: f32) {
    let c = (i >> 1u) & 3u;
    let w = NAME[i >> 3u][c];
    if (i & 1u) == 0u {
        NAME[i >> 3u][c] = (w & 0xffffffff00000000lu) | u64(bitcast<u32>(v));
    } else {
        NAME[i >> 3u][c] = (w & 0xfffffffflu) | (u64(bitcast<u32>(v)) << 32u);
    }
}
