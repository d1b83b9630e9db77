// Shared by loss.wgsl (forward) and grad.wgsl (backward): the parameters, the input
// bindings 0-4 and the helpers that read them. Rust prepends it after lse.wgsl
// (src/gpu/kernels/source.rs). Keep LossParams in sync with `LossParams` in src/gpu/ops/loss/plan.rs.
//
// Shapes: logits and probs are [outer, C, inner] (see src/layout.rs); row r = o*inner + i
// is x[o, 0..C, i], class c at o*C*inner + c*inner + i. targets has one class per row.
// Rows count from the start of the chunk bound here.
//
// Bindings 0-4:
//   0 params: uniform LossParams
//   1 logits: storage          [rows * C] in the logits' dtype (f32, f16 or bf16), read in
//                              groups of four, the buffer padded to 16 bytes; read for
//                              loss.wgsl, read_write for grad.wgsl (which can write an f32
//                              gradient over f32 logits).
//   2 targets: storage, read   [rows] classes as i32 or u32 (one word each), or as i64 (two
//                              words, low first: WGSL has no 64-bit integers without
//                              SHADER_INT64); a dummy with probability targets
//   3 probs: storage, read     [rows * C] probabilities as vec4s (a dummy with class targets)
//   4 weight: storage, read    [C] (a dummy without weight)

struct LossParams {
    rows: u32,
    classes: u32,
    inner: u32,
    // bit 0: weight given; bit 1: probability targets; bit 2: u32 targets.
    flags: u32,
    ignore_index: i32,
    label_smoothing: f32,
    z_loss: f32,
    // 0: off; else logits become softcap * tanh(x / softcap) before anything else.
    softcap: f32,
    // Backward only: the upstream gradient g.
    grad_output: f32,
    // Invocations per row (shared/lse.wgsl).
    lanes: u32,
    // 32-bit words per target: 1 (i32, u32) or 2 (i64).
    target_words: u32,
    // Index of this chunk's first row in the whole tensor (for error positions).
    row_base: u32,
    // Split rows (long rows, few rows): each row is `segments` pieces of `segment_len`
    // classes here, one workgroup each; 1 otherwise. They are segments [seg_first, seg_first +
    // segments) of the row's `seg_total`: fewer than all where a row is larger than one
    // binding and is bound a few segments at a time (src/geometry/chunks.rs).
    segments: u32,
    segment_len: u32,
    seg_first: u32,
    seg_total: u32,
    // The row's class of this chunk's class 0 (0 unless a row is larger than one binding),
    // and the row's whole C: `classes` above is this chunk's share.
    class_first: u32,
    total_classes: u32,
    _pad0: u32,
    _pad1: u32,
}

const HAS_WEIGHT: u32 = 1u;
const PROB_TARGETS: u32 = 2u;
// u32 class targets (one word each): a word of 2^31 or more is a class >= 2^31, never an
// i32 ignore_index.
const UNSIGNED_TARGETS: u32 = 4u;

fn unsigned_targets() -> bool {
    return (params.flags & UNSIGNED_TARGETS) != 0u;
}

@group(0) @binding(0) var<uniform> params: LossParams;
// binding 1, logits, is declared by loss.wgsl (read) and grad.wgsl (read_write), and read
// through io/input_*.wgsl: logits_4(j) reads vec4 j, logits_1(i) element i, as f32.
@group(0) @binding(2) var<storage, read> targets: array<i32>;
@group(0) @binding(3) var<storage, read> probs: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> weight: array<f32>;

fn prob(i: u32) -> f32 {
    return probs[i >> 2u][i & 3u];
}

// Set from Rust: false for a call with class targets and no label smoothing, z-loss or
// softcap (only weights), so that every branch below on those options folds away when the
// pipeline is compiled. CPU adapters run both sides of a branch, so each row otherwise paid
// for the general code it skipped (measured: docs/PERFORMANCE.md).
override GENERAL: bool = true;

// Softcap on (never without GENERAL).
fn capped() -> bool {
    return GENERAL && params.softcap != 0.0;
}

// The label smoothing ε (0 without GENERAL).
fn label_smoothing() -> f32 {
    if GENERAL {
        return params.label_smoothing;
    }
    return 0.0;
}

// The z-loss coefficient (0 without GENERAL).
fn z_loss() -> f32 {
    if GENERAL {
        return params.z_loss;
    }
    return 0.0;
}

fn cap(x: f32) -> f32 {
    if capped() {
        return params.softcap * tanh(x / params.softcap);
    }
    return x;
}

fn cap4(x: vec4<f32>) -> vec4<f32> {
    if capped() {
        return params.softcap * tanh(x / params.softcap);
    }
    return x;
}

// The weight of class c of this chunk's rows (class class_first + c of the whole row).
fn class_weight(c: u32) -> f32 {
    return target_weight(params.class_first + c);
}

// The weight of class t of the whole row (a row's target).
fn target_weight(t: u32) -> f32 {
    if (params.flags & HAS_WEIGHT) != 0u {
        return weight[t];
    }
    return 1.0;
}

fn prob_targets() -> bool {
    return GENERAL && (params.flags & PROB_TARGETS) != 0u;
}

// q_c = w_c · (t_c·(1-ε) + ε/C): the weight of -log p_c in a probability-target loss.
fn prob_weight(c: u32, i: u32) -> f32 {
    let eps = label_smoothing();
    return class_weight(c) * (prob(i) * (1.0 - eps) + eps / f32(params.total_classes));
}

// The class target of a row: its class, -1 when ignored, -2 when out of range (only device
// targets can be; host targets are checked before upload).
fn row_target(row: u32) -> i32 {
    let t = targets[row * params.target_words];
    if params.target_words == 2u {
        // An i64 is a small integer only when its high word is its low word's sign.
        let high = targets[row * 2u + 1u];
        if high != select(0, -1, t < 0) {
            return -2;
        }
    } else if unsigned_targets() && t < 0 {
        return -2;
    }
    if t == params.ignore_index {
        return -1;
    }
    if t < 0 || u32(t) >= params.total_classes {
        return -2;
    }
    return t;
}

// One lane's share of a row: the online (M, S) and the smoothing sums (Q, A).
struct Acc {
    st: Lse,
    q: f32,
    a: f32,
}

// Whether the row needs Q and A (label smoothing or probability targets).
fn smoothing() -> bool {
    return prob_targets() || label_smoothing() > 0.0;
}

// Adds logit i (class c) to the lane's sums; r is the row's reference logit.
fn push_one(acc: Acc, i: u32, c: u32, r: f32) -> Acc {
    let x = cap(logits_1(i));
    var out = Acc(lse_push(acc.st, x), acc.q, acc.a);
    if smoothing() {
        var q = class_weight(c);
        if prob_targets() {
            q = prob_weight(c, i);
        }
        out.q += q;
        out.a += q * (x - r);
    }
    return out;
}

// Adds `raw`, the vec4 j (classes c0..c0+3 of a contiguous row), to the lane's sums.
fn push_vec4(acc: Acc, raw: vec4<f32>, j: u32, c0: u32, r: f32) -> Acc {
    hold4(j, raw);
    let v = cap4(raw);
    var out = Acc(lse_push4(acc.st, v), acc.q, acc.a);
    if smoothing() {
        var q = vec4<f32>(class_weight(c0), class_weight(c0 + 1u), class_weight(c0 + 2u), class_weight(c0 + 3u));
        if prob_targets() {
            let eps = label_smoothing();
            q *= probs[j] * (1.0 - eps) + eps / f32(params.total_classes);
        }
        out.q += (q.x + q.y) + (q.z + q.w);
        let qa = q * (v - vec4<f32>(r));
        out.a += (qa.x + qa.y) + (qa.z + qa.w);
    }
    return out;
}

// A row's statistics, the same in every lane of the row: the merged (M, S), the smoothing
// sums (Q, A) and the reference logit r they are taken against.
struct RowStats {
    st: Lse,
    qa: vec2<f32>,
    r: f32,
}

// Pair q of a contiguous row starting at base, pushed (smoothing or softcap on).
fn push_pair(acc: Acc, q: u32, base: u32, r: f32) -> Acc {
    let w = logits_8(q);
    let a = push_vec4(acc, w.a, 2u * q, 8u * q - base, r);
    return push_vec4(a, w.b, 2u * q + 1u, 8u * q + 4u - base, r);
}

// Reads the row once (vec4s when contiguous) and merges its lanes' sums; with HOLD_ROWS the
// row's vec4s are also kept in workgroup memory (shared/hold.wgsl) for a second pass.
fn row_stats(slot: RowSlot, base: u32, lid: u32) -> RowStats {
    return row_stats_range(slot, base, 0u, params.classes, lid);
}

// The reference logit r of a row or of a segment of it (the logit at flat index i, its first),
// against which the smoothing sums are taken.
fn row_reference(i: u32) -> f32 {
    var r = 0.0;
    if smoothing() && params.classes > 0u {
        r = cap(logits_1(i));
        if !is_finite(r) {
            r = 0.0;
        }
    }
    return r;
}

// As row_stats over classes [c0, c1) of the row only (a segment of a split row).
fn row_stats_range(slot: RowSlot, base: u32, c0: u32, c1: u32, lid: u32) -> RowStats {
    var r = 0.0;
    var acc = Acc(lse_empty(), 0.0, 0.0);
    if slot.valid {
        r = row_reference(base + c0 * params.inner);
        if params.inner == 1u {
            let sp = row_span(base + c0, c1 - c0);
            hold_begin(lid, params.lanes, params.classes / 4u + 1u, sp.v0);
            // Pairs of vec4s (one load each where the input is read 8 at a time).
            let pr = span_pairs(sp);
            let l = params.lanes;
            if smoothing() || capped() {
                // One pair a trip here (shared/lse.wgsl).
                for (var q = pr.q0 + slot.lane; q < pr.q1; q += l) {
                    acc = push_pair(acc, q, base, r);
                }
            } else {
                // The common case, kept free of per-element branches.
                acc.st = logits_lse_pairs(acc.st, pr.q0 + slot.lane, pr.q1, l);
            }
            if takes_lo(pr, slot.lane) { acc = push_vec4(acc, logits_4(pr.lo), pr.lo, 4u * pr.lo - base, r); }
            if takes_hi(pr, slot.lane, params.lanes) { acc = push_vec4(acc, logits_4(pr.hi), pr.hi, 4u * pr.hi - base, r); }
            for (var k = slot.lane; k < sp.ends; k += params.lanes) {
                let i = span_scalar(sp, base + c0, k);
                acc = push_one(acc, i, i - base, r);
            }
        } else {
            for (var c = c0 + slot.lane; c < c1; c += params.lanes) {
                acc = push_one(acc, base + c * params.inner, c, r);
            }
        }
    }
    let st = workgroup_lse(acc.st, lid, params.lanes);
    var qa = vec2<f32>(0.0, 0.0);
    if smoothing() {
        qa = workgroup_sum2(vec2<f32>(acc.q, acc.a), lid, params.lanes);
    }
    return RowStats(st, qa, r);
}

// A row's loss, its share of the mean's denominator and its lse, from its statistics.
struct RowLoss {
    loss: f32,
    den: f32,
    lse: f32,
}

// x_target: the row's target logit after softcap (any value where the row has none).
fn row_loss(row: u32, rs: RowStats, x_target: f32) -> RowLoss {
    let eps = label_smoothing();
    let lse = lse_value(rs.st);
    let spread = rs.qa.x * (log(rs.st.s) + (rs.st.m - rs.r)) - rs.qa.y;
    var loss = 0.0;
    var den = 0.0;
    var counted = true;
    if prob_targets() {
        loss = spread;
        den = 1.0;
    } else {
        let t = row_target(row);
        if t == -1 {
            counted = false;
        } else if t == -2 {
            loss = quiet_nan();
            den = quiet_nan();
        } else {
            let w = target_weight(u32(t));
            loss = -w * lse_log_prob(rs.st, x_target);
            // Only when ε > 0: 0·inf would turn an infinite smoothing term into NaN.
            if eps > 0.0 {
                loss = (1.0 - eps) * loss + eps / f32(params.total_classes) * spread;
            }
            den = w;
        }
    }
    if z_loss() != 0.0 && counted {
        loss += z_loss() * lse * lse;
    }
    return RowLoss(loss, den, lse);
}

// The row's share of the mean's denominator, from its target alone: w[y]·m_n, or 1.
fn row_den(row: u32) -> f32 {
    if prob_targets() {
        return 1.0;
    }
    let t = row_target(row);
    if t == -1 {
        return 0.0;
    }
    if t == -2 {
        return quiet_nan();
    }
    return target_weight(u32(t));
}

// The target logit of a row held whole by this chunk, after softcap (0 without a target).
fn target_logit(row: u32, base: u32) -> f32 {
    let t = row_target(row);
    if t < 0 {
        return 0.0;
    }
    return cap(logits_1(base + (u32(t) - params.class_first) * params.inner));
}
