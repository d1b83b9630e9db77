// Writes over NAME (f32), for the in-place gradient.
fn NAME_store4(j: u32, v: vec4<f32>) {
    NAME[j] = v;
}

fn NAME_store1(i: u32, v: f32) {
    NAME[i >> 2u][i & 3u] = v;
}
