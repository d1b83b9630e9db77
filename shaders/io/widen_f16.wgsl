// One u32 word of two IEEE halves (low first) as f32s, with core WGSL's unpack2x16float (no
// SHADER_F16 needed).
fn half_pair(w: u32) -> vec2<f32> {
    return unpack2x16float(w);
}
