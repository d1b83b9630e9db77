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
// Work and traffic: `lanes` invocations per row, like the forward; contiguous rows are read
// as vec4s. cross_entropy_grad reads each logit once more and writes its gradient: with the
// forward that is 8 bytes read + 4 written per logit. With IN_PLACE the gradient overwrites
// the logits (binding 7 is the logits buffer, binding 1 a dummy); each invocation reads x_c
// before it writes the same element, so there is no race.
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

fn source(i: u32) -> f32 {
    if IN_PLACE {
        return grad[i];
    }
    return logit(i);
}

fn source4(j: u32) -> vec4<f32> {
    if IN_PLACE {
        return vec4<f32>(grad[4u * j], grad[4u * j + 1u], grad[4u * j + 2u], grad[4u * j + 3u]);
    }
    return logits[j];
}

// What every element of a row needs.
struct RowGrad {
    st: vec4<f32>,
    coef: f32,
    y: i32,
    wy: f32,
}

// ∂ℓ/∂x for the raw logit `raw` at flat index i, class c.
fn grad_one(g: RowGrad, raw: f32, i: u32, c: u32) -> f32 {
    let eps = params.label_smoothing;
    let x = cap(raw);
    let p = exp(x - g.st.x) / g.st.y;
    var d = 0.0;
    if prob_targets() {
        d = g.st.z * p - prob_weight(c, i);
    } else {
        var onehot = 0.0;
        if i32(c) == g.y {
            onehot = 1.0;
        }
        d = (1.0 - eps) * g.wy * (p - onehot);
        if eps > 0.0 {
            d += eps / f32(params.classes) * (p * params.weight_sum - class_weight(c));
        }
    }
    if params.z_loss != 0.0 {
        d += 2.0 * params.z_loss * g.st.w * p;
    }
    d *= g.coef;
    if params.softcap != 0.0 {
        let y = x / params.softcap;
        d *= 1.0 - y * y;
    }
    return d;
}

@compute @workgroup_size(WG)
fn cross_entropy_grad(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let slot = row_slot(wid, nwg, lid, params.lanes, params.rows);
    if !slot.valid {
        return;
    }
    let row = slot.row;
    let base = row_base(row);
    let classes = params.classes;
    var g = RowGrad(stats[row], params.grad_output / scale[0], 0, 0.0);
    var fill = 0.0;
    var constant = false;
    if !prob_targets() {
        g.y = row_target(row);
        if g.y < 0 {
            // Ignored: an exact zero. Out of range: NaN, like the row's loss.
            constant = true;
            if g.y == -2 {
                fill = quiet_nan();
            }
        } else {
            g.wy = class_weight(u32(g.y));
        }
    }
    if params.inner == 1u {
        let sp = row_span(base, classes);
        for (var j = sp.v0 + slot.lane; j < sp.v1; j += params.lanes) {
            let c0 = 4u * j - base;
            var d = vec4<f32>(fill);
            if !constant {
                let v = source4(j);
                d = vec4<f32>(
                    grad_one(g, v.x, 4u * j, c0),
                    grad_one(g, v.y, 4u * j + 1u, c0 + 1u),
                    grad_one(g, v.z, 4u * j + 2u, c0 + 2u),
                    grad_one(g, v.w, 4u * j + 3u, c0 + 3u),
                );
            }
            grad[4u * j] = d.x;
            grad[4u * j + 1u] = d.y;
            grad[4u * j + 2u] = d.z;
            grad[4u * j + 3u] = d.w;
        }
        for (var k = slot.lane; k < sp.ends; k += params.lanes) {
            let i = span_scalar(sp, base, k);
            var d = fill;
            if !constant {
                d = grad_one(g, source(i), i, i - base);
            }
            grad[i] = d;
        }
    } else {
        for (var c = slot.lane; c < classes; c += params.lanes) {
            let i = base + c * params.inner;
            var d = fill;
            if !constant {
                d = grad_one(g, source(i), i, c);
            }
            grad[i] = d;
        }
    }
}

@compute @workgroup_size(WG)
fn nll_grad(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let slot = row_slot(wid, nwg, lid, params.lanes, params.rows);
    if !slot.valid {
        return;
    }
    let base = row_base(slot.row);
    let t = row_target(slot.row);
    var gy = 0.0;
    if t >= 0 {
        gy = -params.grad_output / scale[0] * class_weight(u32(t));
    } else if t == -2 {
        gy = quiet_nan();
    }
    for (var c = slot.lane; c < params.classes; c += params.lanes) {
        var v = 0.0;
        if i32(c) == t || t == -2 {
            v = gy;
        }
        grad[base + c * params.inner] = v;
    }
}
