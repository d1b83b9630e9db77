// One u32 word of two IEEE halves (low first) as f32s, by integer arithmetic: for CPU
// adapters, which read f16 8 at a time (input_half_wide.wgsl). Exactly unpack2x16float's
// result, but lavapipe's unpack2x16float (and its native f16 loads) cost more than the loads
// (docs/PERFORMANCE.md). A subnormal half m·2^-24 is
// made as f32(m)·2^-24, a normal f32, so no subnormal f32 is involved (CPU adapters may flush
// them).
// The halves h (16 bits each) as f32s: exponent e, mantissa m.
fn half_bits(h: vec2<u32>) -> vec2<f32> {
    let e = (h >> vec2<u32>(10u)) & vec2<u32>(0x1fu);
    let m = h & vec2<u32>(0x3ffu);
    let sign = (h & vec2<u32>(0x8000u)) << vec2<u32>(16u);
    // Normal: rebias the exponent (127 - 15). Infinity or NaN (e = 31): the f32 all-ones
    // exponent, the mantissa (a NaN's payload) kept. Zero or subnormal (e = 0): m·2^-24.
    let normal = ((e + vec2<u32>(112u)) << vec2<u32>(23u)) | (m << vec2<u32>(13u));
    let special = vec2<u32>(0x7f800000u) | (m << vec2<u32>(13u));
    let tiny = bitcast<vec2<u32>>(vec2<f32>(m) * 5.9604645e-8);
    let bits = select(select(normal, special, e == vec2<u32>(31u)), tiny, e == vec2<u32>(0u));
    return bitcast<vec2<f32>>(bits | sign);
}

fn half_pair(w: u32) -> vec2<f32> {
    return half_bits(vec2<u32>(w & 0xffffu, w >> 16u));
}
