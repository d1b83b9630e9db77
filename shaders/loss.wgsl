// cross_entropy and nll_loss, forward: one loss, one weight and one lse per row.
//
// Shapes: logits (and probability targets) are [outer, C, inner] (see src/layout.rs);
// row r = o*inner + i is x[o, 0..C, i]. targets, losses, dens and lses have one entry per
// row, in the order of PyTorch's `none` output [N, d1..dk]. Rows count from the chunk start.
//
// Math (w = weight or 1; m = [y != ignore_index]; ε = label smoothing; lse = log Σ exp x):
//   nll_n  = w[y] · (lse - x[y]) · m                      (= -w[y]·log_softmax(x)[y]·m)
//   class targets:   ℓ_n = (1-ε)·nll_n + (ε/C)·Σ_c w_c·(lse - x_c)·m,   den_n = w[y]·m
//   prob targets:    ℓ_n = Σ_c q_c·(lse - x_c),  q_c = w_c·(t_c·(1-ε) + ε/C),  den_n = 1
//   z-loss adds z·lse² to every counted row.
//   lse - x_c is computed as log(s) - (x_c - m), which stays exact for huge logits.
//   The smoothing sums are Q = Σ q_c and A = Σ q_c·(x_c - r), r = x[row, 0], giving
//   Σ_c q_c·(lse - x_c) = Q·(log(s) + (m - r)) - A; subtracting r keeps A small when the
//   logits are large.
//   nll_loss reads the input as log-probabilities: ℓ_n = -w[y]·x[y]·m.
//   The reduction over rows (and the weighted mean's denominator Σ den_n) is reduce.wgsl.
//
// Work and traffic: cross_entropy_rows is one workgroup per row and reads the row once
// (online max and sum-exp, the target logit gathered by one invocation): 4 bytes per logit,
// 8 with probability targets. It never materialises log_softmax. nll_rows is one invocation
// per row and reads one value of it.
//
// A class target outside [0, C) that is not ignored cannot come from the host API (it is
// checked there); it makes the row NaN here instead of reading out of bounds.
//
// Bindings (keep in sync with `Family::Loss` in src/gpu/kernels.rs and `LossParams` in
// src/gpu/loss.rs):
//   0 params: uniform LossParams
//   1 logits: storage, read         [rows * C]
//   2 targets: storage, read        [rows] i32 classes (a dummy with prob targets)
//   3 probs: storage, read          [rows * C] probabilities (a dummy with class targets)
//   4 weight: storage, read         [C] (a dummy without weight)
//   5 losses: storage, read_write   [rows]
//   6 dens: storage, read_write     [rows] this row's share of the mean's denominator
//   7 lses: storage, read_write     [rows] log-sum-exp of the row (cross_entropy only)

struct LossParams {
    rows: u32,
    classes: u32,
    inner: u32,
    // bit 0: weight given; bit 1: probability targets.
    flags: u32,
    ignore_index: i32,
    label_smoothing: f32,
    z_loss: f32,
    // 0: off; else logits become softcap * tanh(x / softcap) before anything else.
    softcap: f32,
}

const HAS_WEIGHT: u32 = 1u;
const PROB_TARGETS: u32 = 2u;

@group(0) @binding(0) var<uniform> params: LossParams;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<i32>;
@group(0) @binding(3) var<storage, read> probs: array<f32>;
@group(0) @binding(4) var<storage, read> weight: array<f32>;
@group(0) @binding(5) var<storage, read_write> losses: array<f32>;
@group(0) @binding(6) var<storage, read_write> dens: array<f32>;
@group(0) @binding(7) var<storage, read_write> lses: array<f32>;

fn row_base(row: u32) -> u32 {
    return (row / params.inner) * params.classes * params.inner + row % params.inner;
}

fn load(i: u32) -> f32 {
    let x = logits[i];
    if params.softcap != 0.0 {
        return params.softcap * tanh(x / params.softcap);
    }
    return x;
}

fn class_weight(c: u32) -> f32 {
    if (params.flags & HAS_WEIGHT) != 0u {
        return weight[c];
    }
    return 1.0;
}

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
    let prob_targets = (params.flags & PROB_TARGETS) != 0u;
    let smoothing = prob_targets || eps > 0.0;
    var r = 0.0;
    if smoothing && classes > 0u {
        r = load(base);
        if !is_finite(r) {
            r = 0.0;
        }
    }

    var st = lse_empty();
    var qa = vec2<f32>(0.0, 0.0);
    for (var c = lid; c < classes; c += WG) {
        let i = base + c * inner;
        let x = load(i);
        st = lse_push(st, x);
        if smoothing {
            var q = class_weight(c);
            if prob_targets {
                q *= probs[i] * (1.0 - eps) + eps / f32(classes);
            }
            qa += vec2<f32>(q, q * (x - r));
        }
    }
    let row_st = workgroup_lse(st, lid);
    let lse = lse_value(row_st);
    if smoothing {
        qa = workgroup_sum2(qa, lid);
    }
    if lid != 0u {
        return;
    }

    let spread = qa.x * (log(row_st.s) + (row_st.m - r)) - qa.y;
    var loss = 0.0;
    var den = 0.0;
    if prob_targets {
        loss = spread;
        den = 1.0;
    } else {
        let t = targets[row];
        if t == params.ignore_index {
            loss = 0.0;
            den = 0.0;
        } else if t < 0 || u32(t) >= classes {
            loss = quiet_nan();
            den = quiet_nan();
        } else {
            let w = class_weight(u32(t));
            loss = -w * lse_log_prob(row_st, load(base + u32(t) * inner));
            // Only when ε > 0: 0·inf would turn an infinite smoothing term into NaN.
            if eps > 0.0 {
                loss = (1.0 - eps) * loss + eps / f32(classes) * spread;
            }
            den = w;
        }
    }
    if params.z_loss != 0.0 && den != 0.0 {
        loss += params.z_loss * lse * lse;
    }
    losses[row] = loss;
    dens[row] = den;
    lses[row] = lse;
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
    let t = targets[row];
    var loss = 0.0;
    var den = 0.0;
    if t == params.ignore_index {
        loss = 0.0;
    } else if t < 0 || u32(t) >= params.classes {
        loss = quiet_nan();
        den = quiet_nan();
    } else {
        let w = class_weight(u32(t));
        loss = -w * logits[row_base(row) + u32(t) * params.inner];
        den = w;
    }
    losses[row] = loss;
    dens[row] = den;
}
