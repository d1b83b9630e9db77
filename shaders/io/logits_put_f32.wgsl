// The in-place gradient's writes over the f32 logits (binding 1, read_write in grad.wgsl),
// as result_f32.wgsl writes a result: logits_put8, logits_put4, logits_put1.
fn logits_put8(q: u32, w: Vec8) {
    logits[2u * q] = w.a;
    logits[2u * q + 1u] = w.b;
}

fn logits_put4(j: u32, v: vec4<f32>) {
    logits[j] = v;
}

fn logits_put1(i: u32, v: f32) {
    logits[i >> 2u][i & 3u] = v;
}
