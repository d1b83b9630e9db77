// Shared by loss.wgsl (forward) and grad.wgsl (backward): the parameters, the input
// bindings 0-4 and the helpers that read them. Rust prepends it after lse.wgsl
// (src/gpu/kernels.rs). Keep LossParams in sync with `LossParams` in src/gpu/loss.rs.
//
// Shapes: logits and probs are [outer, C, inner] (see src/layout.rs); row r = o*inner + i
// is x[o, 0..C, i], class c at o*C*inner + c*inner + i. targets has one class per row.
// Rows count from the start of the chunk bound here.
//
// Bindings 0-4:
//   0 params: uniform LossParams
//   1 logits: storage, read    [rows * C] as vec4s, the buffer padded to 16 bytes (a dummy
//                              when grad.wgsl works in place)
//   2 targets: storage, read   [rows] i32 classes (a dummy with probability targets)
//   3 probs: storage, read     [rows * C] probabilities as vec4s (a dummy with class targets)
//   4 weight: storage, read    [C] (a dummy without weight)

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
    // Backward only: the upstream gradient g, and W = Σ_c w_c.
    grad_output: f32,
    weight_sum: f32,
    // Invocations per row (shared/lse.wgsl).
    lanes: u32,
    _pad: u32,
}

const HAS_WEIGHT: u32 = 1u;
const PROB_TARGETS: u32 = 2u;

@group(0) @binding(0) var<uniform> params: LossParams;
@group(0) @binding(1) var<storage, read> logits: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> targets: array<i32>;
@group(0) @binding(3) var<storage, read> probs: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> weight: array<f32>;

fn logit(i: u32) -> f32 {
    return logits[i >> 2u][i & 3u];
}

fn prob(i: u32) -> f32 {
    return probs[i >> 2u][i & 3u];
}

fn row_base(row: u32) -> u32 {
    return (row / params.inner) * params.classes * params.inner + row % params.inner;
}

fn cap(x: f32) -> f32 {
    if params.softcap != 0.0 {
        return params.softcap * tanh(x / params.softcap);
    }
    return x;
}

fn cap4(x: vec4<f32>) -> vec4<f32> {
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

fn prob_targets() -> bool {
    return (params.flags & PROB_TARGETS) != 0u;
}

// q_c = w_c · (t_c·(1-ε) + ε/C): the weight of -log p_c in a probability-target loss.
fn prob_weight(c: u32, i: u32) -> f32 {
    let eps = params.label_smoothing;
    return class_weight(c) * (prob(i) * (1.0 - eps) + eps / f32(params.classes));
}

// The class target of a row: its class, -1 when ignored, -2 when out of range (only device
// targets can be; host targets are checked before upload).
fn row_target(row: u32) -> i32 {
    let t = targets[row];
    if t == params.ignore_index {
        return -1;
    }
    if t < 0 || u32(t) >= params.classes {
        return -2;
    }
    return t;
}
