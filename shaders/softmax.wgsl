// log_softmax and softmax along one axis of a contiguous tensor, and their backward passes.
//
// Shapes: x and y are the tensor viewed as [outer, C, inner] (see src/layout.rs). Row r is
// x[o, 0..C, i] with r = o*inner + i, class c of it at flat index o*C*inner + c*inner + i.
// Rows are numbered from the start of the chunk bound here (src/geometry/chunks.rs).
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
// fixed tree (deterministic). Contiguous rows (inner = 1) are read in pairs of vec4s
// (shared/lse.wgsl's Pairs), the same pairs in both passes.
// Passes: read the row for the statistics, read it again and write y: 8 bytes read + 4
// written per logit; 4 read + 4 written when the row is held in workgroup memory (the
// *_held kernels, shared/hold.wgsl). The backward reads out and gy twice and writes once:
// 16 read + 4 written.
//
// Bindings (keep in sync with `Family::Softmax` in src/gpu/kernels/source.rs and
// `SoftmaxParams` in src/gpu/ops/softmax.rs):
//   0 params: uniform SoftmaxParams
//   1 logits: storage, read   [rows * C] x in its dtype (f32, f16 or bf16; read through
//                             io/input_*.wgsl: logits_4(j) vec4 j, logits_1(i) element i),
//                             the forward output for the backward passes, padded to 16 bytes
//   2 result: storage, rw     y, same shape as vec4s (gx for the backward entry points);
//                             the unaligned ends of a row are written one component at a time
//   3 gy: storage, read       same shape as x as vec4s, the upstream gradient (backward only)
//   4 stats: storage, rw      [rows * seg_total] vec2: split rows' partials, row-major, shared
//                             by the chunks of one row (a dummy unsplit)

struct SoftmaxParams {
    rows: u32,
    classes: u32,
    inner: u32,
    lanes: u32,
    // Split rows (shared/lse.wgsl's Segment): `segments` pieces of `segment_len` classes
    // here, segments [seg_first, seg_first + segments) of the `seg_total` of each row (fewer
    // than all where a row is larger than one binding: src/geometry/chunks.rs); 1 otherwise.
    segments: u32,
    segment_len: u32,
    seg_first: u32,
    seg_total: u32,
}

@group(0) @binding(0) var<uniform> params: SoftmaxParams;
// Read through io/input_*.wgsl (logits_8, logits_4, logits_1) and written through
// io/result_*.wgsl (result_put8, result_put4, result_put1).
@group(0) @binding(1) var<storage, read> logits: array<InputWord>;
@group(0) @binding(2) var<storage, read_write> result: array<ResultWord>;
@group(0) @binding(3) var<storage, read> gy: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> stats: array<vec2<f32>>;

const LOG_SOFTMAX: u32 = 0u;
const SOFTMAX: u32 = 1u;

fn gy_at(i: u32) -> f32 {
    return gy[i >> 2u][i & 3u];
}

fn store1(i: u32, v: f32) {
    result_put1(i, v);
}

// (m, s) of classes [c0, c1) of the row, merged over its lanes.
fn row_lse(slot: RowSlot, base: u32, c0: u32, c1: u32, lid: u32) -> Lse {
    var st = lse_empty();
    if slot.valid {
        if params.inner == 1u {
            let sp = row_span(base + c0, c1 - c0);
            hold_begin(lid, params.lanes, params.classes / 4u + 1u, sp.v0);
            // Pairs of vec4s (one load each where x is read 8 at a time): loop trips and load
            // instructions are what CPU adapters pay for (shared/lse.wgsl).
            let pr = span_pairs(sp);
            st = logits_lse_pairs(st, pr.q0 + slot.lane, pr.q1, params.lanes);
            if takes_lo(pr, slot.lane) { st = lse_push4(st, logits_held4(pr.lo)); }
            if takes_hi(pr, slot.lane, params.lanes) { st = lse_push4(st, logits_held4(pr.hi)); }
            for (var k = slot.lane; k < sp.ends; k += params.lanes) {
                st = lse_push(st, logits_1(span_scalar(sp, base + c0, k)));
            }
        } else {
            for (var c = c0 + slot.lane; c < c1; c += params.lanes) {
                st = lse_push(st, logits_1(base + c * params.inner));
            }
        }
    }
    return workgroup_lse(st, lid, params.lanes);
}

// log_softmax (`which` LOG_SOFTMAX) or softmax of the raw vec4 v, given m, log(s), 1/s.
fn forward4(which: u32, v: vec4<f32>, m: f32, log_s: f32, inv_s: f32) -> vec4<f32> {
    if which == LOG_SOFTMAX {
        return (v - vec4<f32>(m)) - vec4<f32>(log_s);
    }
    return exp(v - vec4<f32>(m)) * inv_s;
}

// Writes log_softmax of pair q, raw values w (two pairs a loop trip, both read before either
// is written: shared/lse.wgsl): (x - m) - log(s).
fn log_softmax_pair(q: u32, w: Vec8, m: f32, log_s: f32) {
    let mm = vec4<f32>(m);
    let ls = vec4<f32>(log_s);
    result_put8(q, Vec8((w.a - mm) - ls, (w.b - mm) - ls));
}

// Writes softmax of pair q, raw values w: exp(x - m) · (1 / s).
fn softmax_pair(q: u32, w: Vec8, m: f32, inv_s: f32) {
    let mm = vec4<f32>(m);
    result_put8(q, Vec8(exp(w.a - mm) * inv_s, exp(w.b - mm) * inv_s));
}

// y_c for classes [c0, c1) of the row from its statistics: log_softmax (x - m) - log(s),
// softmax exp(x - m) · (1 / s).
fn write_forward(which: u32, slot: RowSlot, base: u32, c0: u32, c1: u32, st: Lse) {
    if !slot.valid {
        return;
    }
    let m = st.m;
    let log_s = log(st.s);
    let inv_s = 1.0 / st.s;
    if params.inner == 1u {
        let sp = row_span(base + c0, c1 - c0);
        // One loop per op: CPU adapters run both sides of a branch inside a loop.
        let pr = span_pairs(sp);
        let l = params.lanes;
        if which == LOG_SOFTMAX {
            var q = pr.q0 + slot.lane;
            for (; q + l < pr.q1; q += 2u * l) {
                let w = hold_read8(q);
                let v = hold_read8(q + l);
                log_softmax_pair(q, w, m, log_s);
                log_softmax_pair(q + l, v, m, log_s);
            }
            if q < pr.q1 {
                log_softmax_pair(q, hold_read8(q), m, log_s);
            }
            for (var k = slot.lane; k < sp.ends; k += params.lanes) {
                let i = span_scalar(sp, base + c0, k);
                store1(i, (logits_1(i) - m) - log_s);
            }
        } else {
            var q = pr.q0 + slot.lane;
            for (; q + l < pr.q1; q += 2u * l) {
                let w = hold_read8(q);
                let v = hold_read8(q + l);
                softmax_pair(q, w, m, inv_s);
                softmax_pair(q + l, v, m, inv_s);
            }
            if q < pr.q1 {
                softmax_pair(q, hold_read8(q), m, inv_s);
            }
            for (var k = slot.lane; k < sp.ends; k += params.lanes) {
                let i = span_scalar(sp, base + c0, k);
                store1(i, exp(logits_1(i) - m) * inv_s);
            }
        }
        if takes_lo(pr, slot.lane) { result_put4(pr.lo, forward4(which, hold_read4(pr.lo), m, log_s, inv_s)); }
        if takes_hi(pr, slot.lane, params.lanes) { result_put4(pr.hi, forward4(which, hold_read4(pr.hi), m, log_s, inv_s)); }
    } else {
        for (var c = c0 + slot.lane; c < c1; c += params.lanes) {
            let i = base + c * params.inner;
            if which == LOG_SOFTMAX {
                store1(i, (logits_1(i) - m) - log_s);
            } else {
                store1(i, exp(logits_1(i) - m) * inv_s);
            }
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
    write_forward(LOG_SOFTMAX, slot, base, 0u, params.classes, row_lse(slot, base, 0u, params.classes, lid));
}

@compute @workgroup_size(WG)
fn softmax(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let slot = row_slot(wid, nwg, lid, params.lanes, params.rows);
    let base = row_base(slot.row);
    write_forward(SOFTMAX, slot, base, 0u, params.classes, row_lse(slot, base, 0u, params.classes, lid));
}

// Σ gy (log_softmax) or Σ gy · out (softmax) over classes [c0, c1) of the row, merged over
// its lanes.
fn row_dot(which: u32, slot: RowSlot, base: u32, c0: u32, c1: u32, lid: u32) -> f32 {
    var acc = 0.0;
    if slot.valid {
        if params.inner == 1u {
            let sp = row_span(base + c0, c1 - c0);
            for (var j = sp.v0 + slot.lane; j < sp.v1; j += params.lanes) {
                var g = gy[j];
                if which == SOFTMAX {
                    g *= logits_4(j);
                }
                acc += (g.x + g.y) + (g.z + g.w);
            }
            for (var k = slot.lane; k < sp.ends; k += params.lanes) {
                let i = span_scalar(sp, base + c0, k);
                acc += select(gy_at(i), gy_at(i) * logits_1(i), which == SOFTMAX);
            }
        } else {
            for (var c = c0 + slot.lane; c < c1; c += params.lanes) {
                let i = base + c * params.inner;
                acc += select(gy_at(i), gy_at(i) * logits_1(i), which == SOFTMAX);
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

fn write_backward(which: u32, slot: RowSlot, base: u32, c0: u32, c1: u32, total: f32) {
    if !slot.valid {
        return;
    }
    if params.inner == 1u {
        let sp = row_span(base + c0, c1 - c0);
        for (var j = sp.v0 + slot.lane; j < sp.v1; j += params.lanes) {
            let v = logits_4(j);
            let g = gy[j];
            result_put4(j, vec4<f32>(
                backward_value(which, v.x, g.x, total),
                backward_value(which, v.y, g.y, total),
                backward_value(which, v.z, g.z, total),
                backward_value(which, v.w, g.w, total),
            ));
        }
        for (var k = slot.lane; k < sp.ends; k += params.lanes) {
            let i = span_scalar(sp, base + c0, k);
            store1(i, backward_value(which, logits_1(i), gy_at(i), total));
        }
    } else {
        for (var c = c0 + slot.lane; c < c1; c += params.lanes) {
            let i = base + c * params.inner;
            store1(i, backward_value(which, logits_1(i), gy_at(i), total));
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
    let total = row_dot(LOG_SOFTMAX, slot, base, 0u, params.classes, lid);
    write_backward(LOG_SOFTMAX, slot, base, 0u, params.classes, total);
}

@compute @workgroup_size(WG)
fn softmax_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let slot = row_slot(wid, nwg, lid, params.lanes, params.rows);
    let base = row_base(slot.row);
    let total = row_dot(SOFTMAX, slot, base, 0u, params.classes, lid);
    write_backward(SOFTMAX, slot, base, 0u, params.classes, total);
}

// Split rows (src/geometry/rows.rs: rows too long for one workgroup's loop budget, or too few to
// fill the adapter, or larger than one binding). First pass: workgroup g reads segment g % S of
// row g / S and writes its partial, (m, s) for the forward, (Σ, 0) for the backward, to the
// row's slot for it in stats. Second pass: every workgroup of the row merges all the row's
// partials in segment order (the same bits in each: deterministic), then writes its own
// segment. Traffic as unsplit, plus 8 bytes per segment.
fn segment_slot(wid: vec3<u32>, nwg: vec3<u32>) -> Segment {
    return segment_of(linear_workgroup(wid, nwg), params.segments, params.segment_len, params.classes);
}

// Where this workgroup's partial goes: its row's slot for its segment.
fn partial_slot(wid: vec3<u32>, nwg: vec3<u32>, row: u32) -> u32 {
    let local = linear_workgroup(wid, nwg) % params.segments;
    return row * params.seg_total + params.seg_first + local;
}

@compute @workgroup_size(WG)
fn softmax_partials(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let seg = segment_slot(wid, nwg);
    let slot = RowSlot(seg.row, lid, seg.row < params.rows);
    let st = row_lse(slot, row_base(seg.row), seg.c0, seg.c1, lid);
    if slot.valid && lid == 0u {
        stats[partial_slot(wid, nwg, seg.row)] = vec2<f32>(st.m, st.s);
    }
}

// The row's (m, s), merged from its segments' partials in order.
fn merged_lse(row: u32) -> Lse {
    var st = lse_empty();
    for (var k = 0u; k < params.seg_total; k++) {
        let p = stats[row * params.seg_total + k];
        st = lse_merge(st, Lse(p.x, p.y));
    }
    return st;
}

fn forward_segment(which: u32, wid: vec3<u32>, nwg: vec3<u32>, lid: u32) {
    let seg = segment_slot(wid, nwg);
    if seg.row < params.rows {
        let slot = RowSlot(seg.row, lid, true);
        write_forward(which, slot, row_base(seg.row), seg.c0, seg.c1, merged_lse(seg.row));
    }
}

@compute @workgroup_size(WG)
fn log_softmax_segments(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    forward_segment(LOG_SOFTMAX, wid, nwg, lid);
}

@compute @workgroup_size(WG)
fn softmax_segments(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    forward_segment(SOFTMAX, wid, nwg, lid);
}

fn backward_partial(which: u32, wid: vec3<u32>, nwg: vec3<u32>, lid: u32) {
    let seg = segment_slot(wid, nwg);
    let slot = RowSlot(seg.row, lid, seg.row < params.rows);
    let dot = row_dot(which, slot, row_base(seg.row), seg.c0, seg.c1, lid);
    if slot.valid && lid == 0u {
        stats[partial_slot(wid, nwg, seg.row)] = vec2<f32>(dot, 0.0);
    }
}

@compute @workgroup_size(WG)
fn log_softmax_backward_partials(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    backward_partial(LOG_SOFTMAX, wid, nwg, lid);
}

@compute @workgroup_size(WG)
fn softmax_backward_partials(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    backward_partial(SOFTMAX, wid, nwg, lid);
}

fn backward_segment(which: u32, wid: vec3<u32>, nwg: vec3<u32>, lid: u32) {
    let seg = segment_slot(wid, nwg);
    if seg.row < params.rows {
        var total = 0.0;
        for (var k = 0u; k < params.seg_total; k++) {
            total += stats[seg.row * params.seg_total + k].x;
        }
        write_backward(which, RowSlot(seg.row, lid, true), row_base(seg.row), seg.c0, seg.c1, total);
    }
}

@compute @workgroup_size(WG)
fn log_softmax_backward_segments(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    backward_segment(LOG_SOFTMAX, wid, nwg, lid);
}

@compute @workgroup_size(WG)
fn softmax_backward_segments(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    backward_segment(SOFTMAX, wid, nwg, lid);
}
