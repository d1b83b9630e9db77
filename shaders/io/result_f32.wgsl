// The result (softmax's y, the gradient, the write roofline; each family declares it as
// array<ResultWord> at its own binding): f32 values written as vec4s. result_put8 writes vec4s
// 2q and 2q + 1, result_put4 vec4 j, result_put1 element i. result_f32_wide.wgsl defines the
// same functions.
alias ResultWord = vec4<f32>;

fn result_put8(q: u32, w: Vec8) {
    result[2u * q] = w.a;
    result[2u * q + 1u] = w.b;
}

fn result_put4(j: u32, v: vec4<f32>) {
    result[j] = v;
}

fn result_put1(i: u32, v: f32) {
    result[i >> 2u][i & 3u] = v;
}
