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
// Work and traffic: cross_entropy_rows is one workgroup per row and reads the row once
// (online max and sum-exp; one invocation gathers the target logit): 4 bytes per logit, 8
// with probability targets. It never materialises log_softmax. nll_rows is one invocation
// per row and reads one value of it.
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

@compute @workgroup_size(WG)
fn cross_entropy_rows(
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
    let classes = params.classes;
    let inner = params.inner;
    let eps = params.label_smoothing;
    let probs_given = prob_targets();
    let smoothing = probs_given || eps > 0.0;
    var r = 0.0;
    if smoothing && classes > 0u {
        r = cap(logits[base]);
        if !is_finite(r) {
            r = 0.0;
        }
    }

    var st = lse_empty();
    var qa = vec2<f32>(0.0, 0.0);
    for (var c = lid; c < classes; c += WG) {
        let i = base + c * inner;
        let x = cap(logits[i]);
        st = lse_push(st, x);
        if smoothing {
            var q = class_weight(c);
            if probs_given {
                q = prob_weight(c, i);
            }
            qa += vec2<f32>(q, q * (x - r));
        }
    }
    let row_st = workgroup_lse(st, lid);
    if smoothing {
        qa = workgroup_sum2(qa, lid);
    }
    if lid != 0u {
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
            loss = -w * lse_log_prob(row_st, cap(logits[base + u32(t) * inner]));
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
        loss = -w * logits[row_base(row) + u32(t) * params.inner];
        den = w;
    }
    losses[row] = loss;
    dens[row] = den;
}
