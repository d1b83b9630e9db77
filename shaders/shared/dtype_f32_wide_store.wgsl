// Writes over NAME declared 8 at a time (dtype_f32_wide.wgsl). Never reached: the in-place
// gradient's pipelines declare their input with dtype_f32.wgsl (Kernel::writes_input), since
// store1 below is a read-modify-write of a u64 that could race with a neighbouring row's. It
// is here so that grad.wgsl's `if IN_PLACE` branches compile.
fn NAME_bits(a: f32, b: f32) -> u64 {
    return u64(bitcast<u32>(a)) | (u64(bitcast<u32>(b)) << 32u);
}

fn NAME_store4(j: u32, v: vec4<f32>) {
    let k = 2u * (j & 1u);
    NAME[j >> 1u][k] = NAME_bits(v.x, v.y);
    NAME[j >> 1u][k + 1u] = NAME_bits(v.z, v.w);
}

fn NAME_store1(i: u32, v: f32) {
    let c = (i >> 1u) & 3u;
    let w = NAME[i >> 3u][c];
    if (i & 1u) == 0u {
        NAME[i >> 3u][c] = (w & 0xffffffff00000000lu) | u64(bitcast<u32>(v));
    } else {
        NAME[i >> 3u][c] = (w & 0xfffffffflu) | (u64(bitcast<u32>(v)) << 32u);
    }
}
