// The result (each family declares it as array<ResultWord> at its own binding): f32 values
// written 8 a store as vec4<u64> (SHADER_INT64, CPU adapters pay per store instruction, not
// per byte). result_put1 is a read-modify-write of a u64 that could race with another
// invocation's, so the host declares the result this way only where no put1 is reached:
// contiguous rows of C % 4 == 0, every row starting and ending on a vec4
// (`Context::with_wide_output`). The strided branches compile but are never taken.
alias ResultWord = vec4<u64>;

fn result_bits(a: f32, b: f32) -> u64 {
    return u64(bitcast<u32>(a)) | (u64(bitcast<u32>(b)) << 32u);
}

fn result_put8(q: u32, w: Vec8) {
    result[q] = vec4<u64>(
        result_bits(w.a.x, w.a.y),
        result_bits(w.a.z, w.a.w),
        result_bits(w.b.x, w.b.y),
        result_bits(w.b.z, w.b.w),
    );
}

fn result_put4(j: u32, v: vec4<f32>) {
    let k = 2u * (j & 1u);
    result[j >> 1u][k] = result_bits(v.x, v.y);
    result[j >> 1u][k + 1u] = result_bits(v.z, v.w);
}

fn result_put1(i: u32, v: f32) {
    let c = (i >> 1u) & 3u;
    let w = result[i >> 3u][c];
    if (i & 1u) == 0u {
        result[i >> 3u][c] = (w & 0xffffffff00000000lu) | u64(bitcast<u32>(v));
    } else {
        result[i >> 3u][c] = (w & 0xfffffffflu) | (u64(bitcast<u32>(v)) << 32u);
    }
}
