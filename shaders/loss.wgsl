// cross_entropy and nll_loss, forward: one loss, one weight and the softmax statistics per row.
//
// Inputs, shapes and bindings 0-4: see shared/loss_inputs.wgsl. losses, dens and stats have
// one entry per row, in the order of PyTorch's `none` output [N, d1..dk].
//
// Math (w = weight or 1; m_n = [y != ignore_index]; ε = label smoothing; x after softcap):
//   lse = M + log(S), M = max_c x_c, S = Σ_c exp(x_c - M); -log p_c = log(S) - (x_c - M),
//   which stays exact for huge logits where M + log(S) rounds back to M.
//   class targets: ℓ_n = (1-ε)·w[y]·(-log p_y)·m_n + (ε/C)·Σ_c w_c·(-log p_c)·m_n,
//                  den_n = w[y]·m_n
//   prob targets:  ℓ_n = Σ_c q_c·(-log p_c), q_c = w_c·(t_c·(1-ε) + ε/C), den_n = 1
//   z-loss adds z·lse² to every row that is not ignored.
//   The smoothing sums are Q = Σ q_c and A = Σ q_c·(x_c - r), r = x[row, 0], so
//   Σ_c q_c·(-log p_c) = Q·(log(S) + (M - r)) - A; subtracting r keeps A small when the
//   logits are large.
//   nll_loss reads the input as log-probabilities: ℓ_n = -w[y]·x[y]·m_n.
//   The reduction over rows (and the mean's denominator Σ den_n) is reduce.wgsl.
//
// Work and traffic: cross_entropy_rows gives each row `lanes` invocations (shared/lse.wgsl)
// and reads it once, as vec4s when it is contiguous: a vec4 costs one rescale exp(M_old - M)
// and four exp(x - M), and the target logit is gathered by one invocation. 4 bytes read per
// logit (8 with probability targets); log_softmax is never materialised. nll_rows is one
// invocation per row and reads one value of it.
//
// A class target outside [0, C) that is not ignored makes its row NaN; it never reads out
// of bounds.
//
// Bindings 5-7 (keep in sync with `Family::Loss` in src/gpu/kernels.rs):
//   5 losses: storage, read_write  [rows]
//   6 dens: storage, read_write    [rows] the row's share of the mean's denominator
//   7 stats: storage, read_write   [rows] vec4 (M, S, Q, lse), reused by grad.wgsl

@group(0) @binding(5) var<storage, read_write> losses: array<f32>;
@group(0) @binding(6) var<storage, read_write> dens: array<f32>;
@group(0) @binding(7) var<storage, read_write> stats: array<vec4<f32>>;

// One lane's share of a row: the online (M, S) and the smoothing sums (Q, A).
struct Acc {
    st: Lse,
    q: f32,
    a: f32,
}

// Whether the row needs Q and A (label smoothing or probability targets).
fn smoothing() -> bool {
    return prob_targets() || params.label_smoothing > 0.0;
}

// Adds logit i (class c) to the lane's sums; r is the row's reference logit.
fn push_one(acc: Acc, i: u32, c: u32, r: f32) -> Acc {
    let x = cap(logit(i));
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

// Adds the vec4 j (classes c0..c0+3 of a contiguous row) to the lane's sums.
fn push_vec4(acc: Acc, j: u32, c0: u32, r: f32) -> Acc {
    let v = cap4(logits[j]);
    let m = max(acc.st.m, max(max(v.x, v.y), max(v.z, v.w)));
    let e = exp(v - vec4<f32>(m));
    var out = Acc(Lse(m, acc.st.s * exp(acc.st.m - m) + ((e.x + e.y) + (e.z + e.w))), acc.q, acc.a);
    if smoothing() {
        var q = vec4<f32>(class_weight(c0), class_weight(c0 + 1u), class_weight(c0 + 2u), class_weight(c0 + 3u));
        if prob_targets() {
            let eps = params.label_smoothing;
            q *= probs[j] * (1.0 - eps) + eps / f32(params.classes);
        }
        out.q += (q.x + q.y) + (q.z + q.w);
        let qa = q * (v - vec4<f32>(r));
        out.a += (qa.x + qa.y) + (qa.z + qa.w);
    }
    return out;
}

@compute @workgroup_size(WG)
fn cross_entropy_rows(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let slot = row_slot(wid, nwg, lid, params.lanes, params.rows);
    let row = slot.row;
    let base = row_base(row);
    let classes = params.classes;
    let inner = params.inner;
    let eps = params.label_smoothing;
    let probs_given = prob_targets();
    var r = 0.0;
    var acc = Acc(lse_empty(), 0.0, 0.0);
    if slot.valid {
        if smoothing() && classes > 0u {
            r = cap(logit(base));
            if !is_finite(r) {
                r = 0.0;
            }
        }
        if inner == 1u {
            let sp = row_span(base, classes);
            for (var j = sp.v0 + slot.lane; j < sp.v1; j += params.lanes) {
                acc = push_vec4(acc, j, 4u * j - base, r);
            }
            for (var k = slot.lane; k < sp.ends; k += params.lanes) {
                let i = span_scalar(sp, base, k);
                acc = push_one(acc, i, i - base, r);
            }
        } else {
            for (var c = slot.lane; c < classes; c += params.lanes) {
                acc = push_one(acc, base + c * inner, c, r);
            }
        }
    }
    let row_st = workgroup_lse(acc.st, lid, params.lanes);
    var qa = vec2<f32>(0.0, 0.0);
    if smoothing() {
        qa = workgroup_sum2(vec2<f32>(acc.q, acc.a), lid, params.lanes);
    }
    if !slot.valid || slot.lane != 0u {
        return;
    }

    let lse = lse_value(row_st);
    let spread = qa.x * (log(row_st.s) + (row_st.m - r)) - qa.y;
    var loss = 0.0;
    var den = 0.0;
    var counted = true;
    if probs_given {
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
            let w = class_weight(u32(t));
            loss = -w * lse_log_prob(row_st, cap(logit(base + u32(t) * inner)));
            // Only when ε > 0: 0·inf would turn an infinite smoothing term into NaN.
            if eps > 0.0 {
                loss = (1.0 - eps) * loss + eps / f32(classes) * spread;
            }
            den = w;
        }
    }
    if params.z_loss != 0.0 && counted {
        loss += params.z_loss * lse * lse;
    }
    losses[row] = loss;
    dens[row] = den;
    stats[row] = vec4<f32>(row_st.m, row_st.s, qa.x, lse);
}

@compute @workgroup_size(WG)
fn nll_rows(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = linear_workgroup(wid, nwg) * WG + lid;
    if row >= params.rows {
        return;
    }
    let t = row_target(row);
    var loss = 0.0;
    var den = 0.0;
    if t == -2 {
        loss = quiet_nan();
        den = quiet_nan();
    } else if t >= 0 {
        let w = class_weight(u32(t));
        loss = -w * logit(row_base(row) + u32(t) * params.inner);
        den = w;
    }
    losses[row] = loss;
    dens[row] = den;
}
