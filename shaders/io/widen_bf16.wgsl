// One u32 word of two bfloat16s (low first) as f32s: a bf16 is the top half of an f32, so
// widening is a shift.
fn half_pair(w: u32) -> vec2<f32> {
    return vec2<f32>(bitcast<f32>(w << 16u), bitcast<f32>(w & 0xffff0000u));
}
