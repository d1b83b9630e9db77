// cross_entropy and nll_loss, backward: d(loss)/d(logits), optionally written over the logits.
//
// Runs after loss.wgsl and reduce.wgsl in the same submission. Inputs, shapes and bindings
// 0-4: see shared/loss_inputs.wgsl.
//
// Math, with D = the mean's denominator (1 for sum and none), g the upstream gradient,
// p_c = exp(x_c - M) / S from the forward's stats, and x after softcap:
//   class targets: ∂ℓ/∂x_c = (g/D)·m_n·[(1-ε)·w[y]·(p_c - [c = y]) + (ε/C)·(p_c·W - w_c)
//                                       + 2·z·lse·p_c],   W = Σ_j w_j
//   prob targets:  ℓ_n = Q·lse - Σ_c q_c·x_c, so
//                  ∂ℓ/∂x_c = (g/D)·[Q·p_c - q_c + 2·z·lse·p_c],   Q = Σ_c q_c (from stats)
//   softcap: times ∂x'/∂x = 1 - (x'/cap)².
//   nll_loss: ∂ℓ/∂x_c = -(g/D)·w[y]·[c = y]·m_n; it reads no logits.
//   Ignored rows get an exact 0.
//
// Work and traffic: one workgroup per row. cross_entropy_grad reads each logit once more and
// writes its gradient: with the forward that is 8 bytes read + 4 written per logit. With
// IN_PLACE the gradient overwrites the logits (binding 7 is the logits buffer, binding 1 a
// dummy); each invocation reads x_c before it writes the same element, so there is no race.
//
// Bindings 5-7 (keep in sync with `Family::Grad` in src/gpu/kernels.rs):
//   5 stats: storage, read         [rows] vec4 (M, S, Q, lse) from cross_entropy_rows
//   6 scale: storage, read         [1] D, from reduce.wgsl's finalize (or 1)
//   7 grad: storage, read_write    [rows * C], the logits themselves when IN_PLACE

// Set from Rust: the in-place pipeline reads the logits from binding 7.
override IN_PLACE: bool = false;

@group(0) @binding(5) var<storage, read> stats: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> scale: array<f32>;
@group(0) @binding(7) var<storage, read_write> grad: array<f32>;

fn logit(i: u32) -> f32 {
    if IN_PLACE {
        return grad[i];
    }
    return logits[i];
}

@compute @workgroup_size(WG)
fn cross_entropy_grad(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = linear_workgroup(wid, nwg);
    if row >= params.rows {
        return;
    }
    let base = row_base(row);
    let classes = params.classes;
    let eps = params.label_smoothing;
    let probs_given = prob_targets();
    let st = stats[row];
    let coef = params.grad_output / scale[0];
    var t = 0;
    var wy = 0.0;
    if !probs_given {
        t = row_target(row);
        if t < 0 {
            // Ignored: an exact zero. Out of range: NaN, like the row's loss.
            var v = 0.0;
            if t == -2 {
                v = quiet_nan();
            }
            for (var c = lid; c < classes; c += WG) {
                grad[base + c * params.inner] = v;
            }
            return;
        }
        wy = class_weight(u32(t));
    }
    let zterm = 2.0 * params.z_loss * st.w;
    for (var c = lid; c < classes; c += WG) {
        let i = base + c * params.inner;
        let x = cap(logit(i));
        let p = exp(x - st.x) / st.y;
        var d = 0.0;
        if probs_given {
            d = st.z * p - prob_weight(c, i);
        } else {
            var onehot = 0.0;
            if i32(c) == t {
                onehot = 1.0;
            }
            d = (1.0 - eps) * wy * (p - onehot);
            if eps > 0.0 {
                d += eps / f32(classes) * (p * params.weight_sum - class_weight(c));
            }
        }
        if params.z_loss != 0.0 {
            d += zterm * p;
        }
        d *= coef;
        if params.softcap != 0.0 {
            let y = x / params.softcap;
            d *= 1.0 - y * y;
        }
        grad[i] = d;
    }
}

@compute @workgroup_size(WG)
fn nll_grad(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = linear_workgroup(wid, nwg);
    if row >= params.rows {
        return;
    }
    let base = row_base(row);
    let t = row_target(row);
    var gy = 0.0;
    if t >= 0 {
        gy = -params.grad_output / scale[0] * class_weight(u32(t));
    } else if t == -2 {
        gy = quiet_nan();
    }
    for (var c = lid; c < params.classes; c += WG) {
        var v = 0.0;
        if i32(c) == t || t == -2 {
            v = gy;
        }
        grad[base + c * params.inner] = v;
    }
}
