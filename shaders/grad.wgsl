// cross_entropy forward and backward fused, and nll_loss backward: the loss of each row and
// d(loss)/d(logits), optionally written over the logits.
//
// Inputs, shapes and bindings 0-4: see shared/loss_inputs.wgsl (logits are read_write here).
//
// Math, with D = the mean's denominator (1 for sum and none), g the upstream gradient,
// p_c = exp(x_c - M) / S, and x after softcap:
//   class targets: ∂ℓ/∂x_c = (g/D)·m_n·[(1-ε)·w[y]·(p_c - [c = y]) + (ε/C)·(p_c·W - w_c)
//                                       + 2·z·lse·p_c],   W = Σ_j w_j
//   prob targets:  ℓ_n = Q·lse - Σ_c q_c·x_c, so
//                  ∂ℓ/∂x_c = (g/D)·[Q·p_c - q_c + 2·z·lse·p_c],   Q = Σ_c q_c
//   softcap: times ∂x'/∂x = 1 - (x'/cap)².
//   nll_loss: ∂ℓ/∂x_c = -(g/D)·w[y]·[c = y]·m_n; it reads no logits.
//   cross_entropy's ignored rows get PyTorch's 0 - p_c·0: 0, or NaN where the row's lse is
//   not finite.
//
// D depends only on the targets and weights, so loss.wgsl's row_dens and reduce.wgsl give
// it before any logit is read (dens_total alone, for batches one workgroup walks quickly), and one dispatch does the whole row: cross_entropy_fused
// reads the row for its statistics (as cross_entropy_rows does, same code and order, so the
// loss is bitwise the forward's), writes its loss, then reads the row again and writes the
// gradient. The second read follows the first within the same workgroup, so it comes from
// cache whenever a row fits there. Traffic: 8 bytes read + 4 written per logit; 4 read + 4
// written when the row is held in workgroup memory (cross_entropy_fused with HOLD_ROWS,
// shared/hold.wgsl), where the second read comes from there.
// Split rows instead run loss.wgsl's partials and merge, then cross_entropy_grad_segments:
// the same 8 bytes read and 4 written per logit, the second read from memory.
// With IN_PLACE the gradient goes over the logits (binding 7 is then a dummy): each element
// is read before the same invocation writes it, and no lane writes before the barrier that
// ends every lane's first read.
//
// Bindings 5-8 (keep in sync with `Family::Grad` in src/gpu/kernels/source.rs):
//   5 losses: storage, read_write  [rows]
//   6 scale: storage, read_write   [2] D (reduce.wgsl's finalize, dens_total, or 1) and
//                                  W = Σ w (from the host, or summed on the device for
//                                  device weights)
//   7 grad: storage, read_write    [rows * C] as vec4s, or vec4<u64> pairs where written 8
//                                  at a time (a dummy when IN_PLACE)
//   8 stats: storage, read_write   [rows * S] vec4 (M, S, Q, lse) at row * S (S = 1 unless
//                                  rows are split)

// Set from Rust: the in-place pipeline writes the gradient over the logits.
override IN_PLACE: bool = false;

@group(0) @binding(5) var<storage, read_write> losses: array<f32>;
@group(0) @binding(6) var<storage, read_write> scale: array<f32>;
// The logits are read through io/input_*.wgsl and, in place, written through
// io/logits_put_*.wgsl; the gradient is written through io/result_*.wgsl.
@group(0) @binding(1) var<storage, read_write> logits: array<InputWord>;
@group(0) @binding(7) var<storage, read_write> result: array<ResultWord>;
@group(0) @binding(8) var<storage, read_write> stats: array<vec4<f32>>;

fn store4(j: u32, d: vec4<f32>) {
    if IN_PLACE {
        logits_put4(j, d);
    } else {
        result_put4(j, d);
    }
}

fn store8(q: u32, w: Vec8) {
    if IN_PLACE {
        logits_put8(q, w);
    } else {
        result_put8(q, w);
    }
}

fn store1(i: u32, d: f32) {
    if IN_PLACE {
        logits_put1(i, d);
    } else {
        result_put1(i, d);
    }
}

// What every element of a row needs.
struct RowGrad {
    m: f32,
    inv_s: f32,
    q: f32,
    lse: f32,
    coef: f32,
    y: i32,
    wy: f32,
    w_sum: f32,
    // Ignored rows get `fill` everywhere: 0, or NaN for an out-of-range target or where the
    // row's lse is not finite.
    constant: bool,
    fill: f32,
}

// ∂ℓ/∂x for the raw logit `raw` at flat index i, class c: the general case. Written as
// PyTorch's autograd computes it, the upstream gradient k = g/D applied first, then
// log_softmax's backward p_c·Σ_j G_j - G_c of the loss's G_c = k·(weight of -log p_c), with the
// one-hot term added only at the target: an infinite weight or g then gives PyTorch's NaN at
// the target (inf - inf) and inf elsewhere, never a finite-looking -inf.
fn grad_one(g: RowGrad, raw: f32, i: u32, c: u32) -> f32 {
    let eps = label_smoothing();
    let x = cap(raw);
    let p = exp(x - g.m) * g.inv_s;
    let k = g.coef;
    var d = 0.0;
    if prob_targets() {
        d = p * (k * g.q) - k * prob_weight(c, i);
    } else {
        let ky = k * ((1.0 - eps) * g.wy);
        d = p * ky;
        if i32(params.class_first + c) == g.y {
            d -= ky;
        }
        if eps > 0.0 {
            let ke = k * (eps / f32(params.total_classes));
            d += p * (ke * g.w_sum) - ke * class_weight(c);
        }
    }
    if z_loss() != 0.0 {
        d += p * (k * (2.0 * z_loss() * g.lse));
    }
    if capped() {
        let t = x / params.softcap;
        d *= 1.0 - t * t;
    }
    return d;
}

// grad_one for the four raw logits v of vec4 j of a contiguous row starting at base.
fn grad4(g: RowGrad, v: vec4<f32>, j: u32, base: u32) -> vec4<f32> {
    let cj = 4u * j - base;
    return vec4<f32>(
        grad_one(g, v.x, 4u * j, cj),
        grad_one(g, v.y, 4u * j + 1u, cj + 1u),
        grad_one(g, v.z, 4u * j + 2u, cj + 2u),
        grad_one(g, v.w, 4u * j + 3u, cj + 3u),
    );
}

// The common case's constants, with k = (g/D)·w[y]: the row max m, k/S, and the target's
// vec4 yj with k in its one-hot lane (`hot`).
struct SimpleGrad {
    m: vec4<f32>,
    k_s: f32,
    yj: u32,
    hot: vec4<f32>,
}

// k·(p_c - [c = y]) for the raw logits v of vec4 j, as exp(x - m)·(k/S) - k·[c = y]: one
// multiply an element fewer than k·(exp(x - m)/S - [c = y]).
fn simple_grad4(sg: SimpleGrad, v: vec4<f32>, j: u32) -> vec4<f32> {
    return exp(v - sg.m) * sg.k_s - select(vec4<f32>(0.0), sg.hot, j == sg.yj);
}

// Writes the gradient of pair q, raw logits w (two pairs a loop trip, both read before
// either is written: shared/lse.wgsl): the common case, and the general one of a row
// starting at base.
fn simple_grad_pair(sg: SimpleGrad, q: u32, w: Vec8) {
    store8(q, Vec8(simple_grad4(sg, w.a, 2u * q), simple_grad4(sg, w.b, 2u * q + 1u)));
}

fn grad_pair(g: RowGrad, q: u32, base: u32, w: Vec8) {
    store8(q, Vec8(grad4(g, w.a, 2u * q, base), grad4(g, w.b, 2u * q + 1u, base)));
}

// What a row's gradient needs, from its stats (M, S, Q, lse) and its target.
fn grad_row(row: u32, st: vec4<f32>) -> RowGrad {
    let coef = params.grad_output / scale[0];
    var g = RowGrad(st.x, 1.0 / st.y, st.z, st.w, coef, 0, 0.0, scale[1], false, 0.0);
    if !prob_targets() {
        g.y = row_target(row);
        if g.y < 0 {
            // Ignored: PyTorch's log_softmax backward of a zero upstream gradient, 0 - p_c·0,
            // which is 0, or NaN everywhere where the row's lse is not finite (a NaN or +inf
            // logit, or every logit -inf). Out of range: NaN, like the row's loss.
            g.constant = true;
            if g.y == -2 || !is_finite(st.w) {
                g.fill = quiet_nan();
            }
        } else {
            g.wy = target_weight(u32(g.y));
        }
    }
    return g;
}

// Writes the gradient of classes [c0, c1) of the row, the slot's lanes striding over them.
fn write_grad(slot: RowSlot, base: u32, c0: u32, c1: u32, g: RowGrad) {
    let constant = g.constant;
    let fill = g.fill;
    let simple = !prob_targets() && !smoothing() && z_loss() == 0.0 && !capped();
    if params.inner == 1u {
        let sp = row_span(base + c0, c1 - c0);
        // Three loops rather than branches inside one: CPU adapters run both sides of a
        // branch in a loop body, even a uniform one.
        if constant {
            for (var j = sp.v0 + slot.lane; j < sp.v1; j += params.lanes) {
                store4(j, vec4<f32>(fill));
            }
        } else if simple {
            // (g/D)·w[y]·(p_c - [c = y]), four at a time, in the pairs the first read took.
            let k = g.coef * g.wy;
            // The target's flat index here: past this chunk's share of the row (wrapping
            // below it) where another chunk holds the target.
            let ty = base + u32(g.y) - params.class_first;
            let sg = SimpleGrad(
                vec4<f32>(g.m),
                k * g.inv_s,
                // The target's vec4 and lane within it: one-hot without a compare per element.
                ty / 4u,
                select(vec4<f32>(0.0), vec4<f32>(k), vec4<u32>(0u, 1u, 2u, 3u) == vec4<u32>(ty % 4u)),
            );
            let pr = span_pairs(sp);
            let l = params.lanes;
            var q = pr.q0 + slot.lane;
            for (; q + l < pr.q1; q += 2u * l) {
                let w = hold_read8(q);
                let v = hold_read8(q + l);
                simple_grad_pair(sg, q, w);
                simple_grad_pair(sg, q + l, v);
            }
            if q < pr.q1 {
                simple_grad_pair(sg, q, hold_read8(q));
            }
            if takes_lo(pr, slot.lane) { store4(pr.lo, simple_grad4(sg, hold_read4(pr.lo), pr.lo)); }
            if takes_hi(pr, slot.lane, params.lanes) { store4(pr.hi, simple_grad4(sg, hold_read4(pr.hi), pr.hi)); }
        } else {
            // One pair a trip here (shared/lse.wgsl).
            let pr = span_pairs(sp);
            for (var q = pr.q0 + slot.lane; q < pr.q1; q += params.lanes) {
                grad_pair(g, q, base, hold_read8(q));
            }
            if takes_lo(pr, slot.lane) { store4(pr.lo, grad4(g, hold_read4(pr.lo), pr.lo, base)); }
            if takes_hi(pr, slot.lane, params.lanes) { store4(pr.hi, grad4(g, hold_read4(pr.hi), pr.hi, base)); }
        }
        for (var k = slot.lane; k < sp.ends; k += params.lanes) {
            let i = span_scalar(sp, base + c0, k);
            var d = fill;
            if !constant {
                d = grad_one(g, logits_1(i), i, i - base);
            }
            store1(i, d);
        }
    } else {
        for (var c = c0 + slot.lane; c < c1; c += params.lanes) {
            let i = base + c * params.inner;
            var d = fill;
            if !constant {
                d = grad_one(g, logits_1(i), i, c);
            }
            store1(i, d);
        }
    }
}

@compute @workgroup_size(WG)
fn cross_entropy_fused(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let slot = row_slot(wid, nwg, lid, params.lanes, params.rows);
    let row = slot.row;
    let base = row_base(row);
    // First read: the statistics.
    let rs = row_stats(slot, base, lid);
    // In place, every lane has finished reading before any lane below writes. The tree and
    // multi-subgroup reductions end with a barrier already; the shuffles have none.
    if IN_PLACE {
        workgroupBarrier();
    }
    if !slot.valid {
        return;
    }
    let l = row_loss(row, rs, target_logit(row, base));
    let st = vec4<f32>(rs.st.m, rs.st.s, rs.qa.x, l.lse);
    if slot.lane == 0u {
        losses[row] = l.loss;
        stats[row] = st;
    }
    // Second read: the gradient.
    write_grad(slot, base, 0u, params.classes, grad_row(row, st));
}

// Split rows (loss.wgsl's cross_entropy_partials and cross_entropy_merge ran first and left
// the row's stats at stats[row * S]): workgroup g writes the gradient of segment g % S of
// row g / S, all WG invocations on it (lanes = WG).
@compute @workgroup_size(WG)
fn cross_entropy_grad_segments(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = linear_workgroup(wid, nwg);
    let seg = segment_of(g, params.segments, params.segment_len, params.classes);
    if seg.row >= params.rows {
        return;
    }
    let st = stats[seg.row * params.seg_total];
    write_grad(RowSlot(seg.row, lid, true), row_base(seg.row), seg.c0, seg.c1, grad_row(seg.row, st));
}

// nll_loss backward: invocation k writes the NLL_VALUES elements from k·NLL_VALUES of the
// chunk, whatever their rows (no walk along a row, so a row of any length takes the same
// few loop trips: src/geometry/rows.rs says why that matters). `NLL_GRAD_VALUES` in
// src/gpu/ops/loss/encode.rs sizes the dispatch; a naga unit test checks that the two agree.
const NLL_VALUES: u32 = 4u;

@compute @workgroup_size(WG)
fn nll_grad(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let first = (linear_workgroup(wid, nwg) * WG + lid) * NLL_VALUES;
    // rows · C, the chunk's element count (rows = outer · inner), below 2^32 (src/geometry/chunks.rs).
    let total = params.rows * params.classes;
    let per_outer = params.classes * params.inner;
    for (var k = 0u; k < NLL_VALUES; k++) {
        let i = first + k;
        if i >= total {
            break;
        }
        // i = o·C·inner + c·inner + j is class c of row o·inner + j.
        let o = i / per_outer;
        let rest = i - o * per_outer;
        let c = rest / params.inner;
        let t = row_target(o * params.inner + (rest - c * params.inner));
        var v = 0.0;
        if t == -2 {
            v = quiet_nan();
        } else if t >= 0 && u32(t) == params.class_first + c {
            v = -params.grad_output / scale[0] * class_weight(c);
        }
        store1(i, v);
    }
}

// D = Σ den over the rows, from the targets alone, by one workgroup, into scale[0]: for
// batches of at most SINGLE_PASS_TRIPS * WG rows (src/gpu/ops/reduce.rs), one dispatch where
// row_dens and a reduction take two or more. Lane l adds rows l, l + WG, ... in order, then
// the workgroup adds the WG sums in a fixed tree (reduce.wgsl's reduce_single order).
// Reads 4 or 8 bytes of target (and a weight) per row; writes 4 bytes.
@compute @workgroup_size(WG)
fn dens_total(@builtin(local_invocation_index) lid: u32) {
    var acc = vec2<f32>(0.0, 0.0);
    for (var row = lid; row < params.rows; row += WG) {
        acc.x += row_den(row);
    }
    let total = workgroup_sum2(acc, lid, WG);
    if lid == 0u {
        scale[0] = total.x;
    }
}
