// NAME: an f32 output written 8 values a store, as vec4<u64> (SHADER_INT64, CPU adapters:
// lavapipe pays per store instruction, not per byte; see dtype_f32_wide.wgsl). The host picks
// it only for contiguous rows of C % 4 == 0 classes in a buffer of whole 32-byte units: every
// row then starts and ends on a vec4, so put1 below, a read-modify-write of a u64 that could
// race with another invocation's, is never reached; it is here for the strided path to compile.
@group(0) @binding(BINDING) var<storage, read_write> NAME: array<vec4<u64>>;

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
