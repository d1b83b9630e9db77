// log_softmax and softmax along one axis of a contiguous tensor, and their backward passes.
//
// Shapes: x and y are the tensor viewed as [outer, C, inner] (see src/layout.rs). Row r is
// x[o, 0..C, i] with r = o*inner + i, class c of it at flat index o*C*inner + c*inner + i.
// Rows are numbered from the start of the chunk bound here (src/gpu/chunks.rs).
//
// Math, per row:
//   m = max_c x_c,  s = Σ_c exp(x_c - m),  lse = m + log(s)
//   log_softmax: y_c = (x_c - m) - log(s)  softmax: y_c = exp(x_c - m) / s
// Backward, given the forward output `out` (bound as x) and the upstream gradient gy:
//   log_softmax_backward: gx_c = gy_c - exp(out_c) · Σ_j gy_j
//   softmax_backward:     gx_c = out_c · (gy_c - Σ_j gy_j · out_j)
//
// Work: `lanes` invocations per row (shared/lse.wgsl); each walks its share of the row
// keeping an online (m, s) — or the backward's sum — and the row's lanes merge them in a
// fixed tree (deterministic). Contiguous rows (inner = 1) are read as vec4s.
// Passes: read the row for the statistics, read it again and write y: 8 bytes read + 4
// written per logit (12 for the backward's reads of out and gy, twice, plus the write:
// 16 read + 4 written).
//
// Bindings (keep in sync with `Family::Softmax` in src/gpu/kernels.rs and
// `SoftmaxParams` in src/gpu/softmax.rs):
//   0 params: uniform SoftmaxParams
//   1 x: storage, read        [rows * C] as vec4s (the buffer is padded to 16 bytes)
//   2 y: storage, read_write  same shape as x (gx for the backward entry points)
//   3 gy: storage, read       same shape as x as vec4s, the upstream gradient (backward only)

struct SoftmaxParams {
    rows: u32,
    classes: u32,
    inner: u32,
    lanes: u32,
}

@group(0) @binding(0) var<uniform> params: SoftmaxParams;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> gy: array<vec4<f32>>;

const LOG_SOFTMAX: u32 = 0u;
const SOFTMAX: u32 = 1u;

fn x_at(i: u32) -> f32 {
    return x[i >> 2u][i & 3u];
}

fn gy_at(i: u32) -> f32 {
    return gy[i >> 2u][i & 3u];
}

fn row_base(row: u32) -> u32 {
    return (row / params.inner) * params.classes * params.inner + row % params.inner;
}

// (m, s) of the row, merged over its lanes.
fn row_lse(slot: RowSlot, base: u32, lid: u32) -> Lse {
    var st = lse_empty();
    if slot.valid {
        if params.inner == 1u {
            let sp = row_span(base, params.classes);
            for (var j = sp.v0 + slot.lane; j < sp.v1; j += params.lanes) {
                let v = x[j];
                let m = max(st.m, max(max(v.x, v.y), max(v.z, v.w)));
                let e = exp(v - vec4<f32>(m));
                st = Lse(m, st.s * exp(st.m - m) + ((e.x + e.y) + (e.z + e.w)));
            }
            for (var k = slot.lane; k < sp.ends; k += params.lanes) {
                st = lse_push(st, x_at(span_scalar(sp, base, k)));
            }
        } else {
            for (var c = slot.lane; c < params.classes; c += params.lanes) {
                st = lse_push(st, x_at(base + c * params.inner));
            }
        }
    }
    return workgroup_lse(st, lid, params.lanes);
}

fn forward_value(which: u32, st: Lse, v: f32) -> f32 {
    if which == LOG_SOFTMAX {
        return lse_log_prob(st, v);
    }
    return exp(v - st.m) / st.s;
}

// Writes y_c for every class of the row from its statistics.
fn write_forward(which: u32, slot: RowSlot, base: u32, st: Lse) {
    if !slot.valid {
        return;
    }
    if params.inner == 1u {
        let sp = row_span(base, params.classes);
        for (var j = sp.v0 + slot.lane; j < sp.v1; j += params.lanes) {
            let v = x[j];
            y[4u * j] = forward_value(which, st, v.x);
            y[4u * j + 1u] = forward_value(which, st, v.y);
            y[4u * j + 2u] = forward_value(which, st, v.z);
            y[4u * j + 3u] = forward_value(which, st, v.w);
        }
        for (var k = slot.lane; k < sp.ends; k += params.lanes) {
            let i = span_scalar(sp, base, k);
            y[i] = forward_value(which, st, x_at(i));
        }
    } else {
        for (var c = slot.lane; c < params.classes; c += params.lanes) {
            let i = base + c * params.inner;
            y[i] = forward_value(which, st, x_at(i));
        }
    }
}

@compute @workgroup_size(WG)
fn log_softmax(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let slot = row_slot(wid, nwg, lid, params.lanes, params.rows);
    let base = row_base(slot.row);
    write_forward(LOG_SOFTMAX, slot, base, row_lse(slot, base, lid));
}

@compute @workgroup_size(WG)
fn softmax(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let slot = row_slot(wid, nwg, lid, params.lanes, params.rows);
    let base = row_base(slot.row);
    write_forward(SOFTMAX, slot, base, row_lse(slot, base, lid));
}

// Σ gy (log_softmax) or Σ gy · out (softmax) over the row, merged over its lanes.
fn row_dot(which: u32, slot: RowSlot, base: u32, lid: u32) -> f32 {
    var acc = 0.0;
    if slot.valid {
        if params.inner == 1u {
            let sp = row_span(base, params.classes);
            for (var j = sp.v0 + slot.lane; j < sp.v1; j += params.lanes) {
                var g = gy[j];
                if which == SOFTMAX {
                    g *= x[j];
                }
                acc += (g.x + g.y) + (g.z + g.w);
            }
            for (var k = slot.lane; k < sp.ends; k += params.lanes) {
                let i = span_scalar(sp, base, k);
                acc += select(gy_at(i), gy_at(i) * x_at(i), which == SOFTMAX);
            }
        } else {
            for (var c = slot.lane; c < params.classes; c += params.lanes) {
                let i = base + c * params.inner;
                acc += select(gy_at(i), gy_at(i) * x_at(i), which == SOFTMAX);
            }
        }
    }
    return workgroup_sum2(vec2<f32>(acc, 0.0), lid, params.lanes).x;
}

fn backward_value(which: u32, out: f32, g: f32, total: f32) -> f32 {
    if which == LOG_SOFTMAX {
        return g - exp(out) * total;
    }
    return out * (g - total);
}

fn write_backward(which: u32, slot: RowSlot, base: u32, total: f32) {
    if !slot.valid {
        return;
    }
    if params.inner == 1u {
        let sp = row_span(base, params.classes);
        for (var j = sp.v0 + slot.lane; j < sp.v1; j += params.lanes) {
            let v = x[j];
            let g = gy[j];
            y[4u * j] = backward_value(which, v.x, g.x, total);
            y[4u * j + 1u] = backward_value(which, v.y, g.y, total);
            y[4u * j + 2u] = backward_value(which, v.z, g.z, total);
            y[4u * j + 3u] = backward_value(which, v.w, g.w, total);
        }
        for (var k = slot.lane; k < sp.ends; k += params.lanes) {
            let i = span_scalar(sp, base, k);
            y[i] = backward_value(which, x_at(i), gy_at(i), total);
        }
    } else {
        for (var c = slot.lane; c < params.classes; c += params.lanes) {
            let i = base + c * params.inner;
            y[i] = backward_value(which, x_at(i), gy_at(i), total);
        }
    }
}

@compute @workgroup_size(WG)
fn log_softmax_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let slot = row_slot(wid, nwg, lid, params.lanes, params.rows);
    let base = row_base(slot.row);
    write_backward(LOG_SOFTMAX, slot, base, row_dot(LOG_SOFTMAX, slot, base, lid));
}

@compute @workgroup_size(WG)
fn softmax_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let slot = row_slot(wid, nwg, lid, params.lanes, params.rows);
    let base = row_base(slot.row);
    write_backward(SOFTMAX, slot, base, row_dot(SOFTMAX, slot, base, lid));
}
