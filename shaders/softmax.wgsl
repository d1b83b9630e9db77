// log_softmax and softmax along one axis of a contiguous tensor, and their backward passes.
//
// Shapes: x and y are the tensor viewed as [outer, C, inner] (see src/layout.rs). Row r is
// x[o, 0..C, i] with r = o*inner + i, class c of it at flat index o*C*inner + c*inner + i.
// Rows are numbered from the start of the chunk bound here (src/gpu/chunks.rs).
//
// Math, per row:
//   m = max_c x_c,  s = Σ_c exp(x_c - m),  lse = m + log(s)
//   log_softmax: y_c = (x_c - m) - log(s)  softmax: y_c = exp(x_c - m) / s
//
// Work: one workgroup per row; each invocation walks the row with stride WG keeping an
// online (m, s), then the workgroup merges them in a fixed tree (deterministic).
// Passes: read the row for (m, s), read it again and write y: 8 bytes read + 4 written per logit.
//
// Backward, given the forward output `out` (bound as x) and the upstream gradient gy:
//   log_softmax_backward: gx_c = gy_c - exp(out_c) · Σ_j gy_j
//   softmax_backward:     gx_c = out_c · (gy_c - Σ_j gy_j · out_j)
// One workgroup per row: a pass for the row sum (fixed tree order), a pass to write gx.
//
// Bindings (keep in sync with `Family::Softmax` in src/gpu/kernels.rs and
// `SoftmaxParams` in src/gpu/softmax.rs):
//   0 params: uniform SoftmaxParams
//   1 x: storage, read        [rows * C] of this chunk
//   2 y: storage, read_write  same shape as x (gx for the backward entry points)
//   3 gy: storage, read        same shape as x, the upstream gradient (backward only)

struct SoftmaxParams {
    rows: u32,
    classes: u32,
    inner: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: SoftmaxParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> gy: array<f32>;

fn row_base(row: u32) -> u32 {
    return (row / params.inner) * params.classes * params.inner + row % params.inner;
}

fn row_lse(base: u32, lid: u32) -> Lse {
    var st = lse_empty();
    for (var c = lid; c < params.classes; c += WG) {
        st = lse_push(st, x[base + c * params.inner]);
    }
    return workgroup_lse(st, lid);
}

@compute @workgroup_size(WG)
fn log_softmax(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = linear_workgroup(wid, nwg);
    // The grid is rounded up to a rectangle; the whole workgroup leaves together.
    if row >= params.rows {
        return;
    }
    let base = row_base(row);
    let st = row_lse(base, lid);
    for (var c = lid; c < params.classes; c += WG) {
        let i = base + c * params.inner;
        y[i] = lse_log_prob(st, x[i]);
    }
}

@compute @workgroup_size(WG)
fn softmax(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = linear_workgroup(wid, nwg);
    // The grid is rounded up to a rectangle; the whole workgroup leaves together.
    if row >= params.rows {
        return;
    }
    let base = row_base(row);
    let st = row_lse(base, lid);
    for (var c = lid; c < params.classes; c += WG) {
        let i = base + c * params.inner;
        y[i] = exp(x[i] - st.m) / st.s;
    }
}

// Σ_c gy_c (log_softmax) or Σ_c gy_c · out_c (softmax) over the row, in a fixed tree order.
fn row_dot(base: u32, lid: u32, times_out: bool) -> f32 {
    var acc = 0.0;
    for (var c = lid; c < params.classes; c += WG) {
        let i = base + c * params.inner;
        if times_out {
            acc += gy[i] * x[i];
        } else {
            acc += gy[i];
        }
    }
    return workgroup_sum2(vec2<f32>(acc, 0.0), lid).x;
}

@compute @workgroup_size(WG)
fn log_softmax_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = linear_workgroup(wid, nwg);
    // The grid is rounded up to a rectangle; the whole workgroup leaves together.
    if row >= params.rows {
        return;
    }
    let base = row_base(row);
    let total = row_dot(base, lid, false);
    for (var c = lid; c < params.classes; c += WG) {
        let i = base + c * params.inner;
        y[i] = gy[i] - exp(x[i]) * total;
    }
}

@compute @workgroup_size(WG)
fn softmax_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = linear_workgroup(wid, nwg);
    // The grid is rounded up to a rectangle; the whole workgroup leaves together.
    if row >= params.rows {
        return;
    }
    let base = row_base(row);
    let total = row_dot(base, lid, true);
    for (var c = lid; c < params.classes; c += WG) {
        let i = base + c * params.inner;
        y[i] = x[i] * (gy[i] - total);
    }
}
