// Shared by every kernel family: the workgroup size, the online log-sum-exp, a few scalar
// helpers and the 2-D grid's workgroup number. Composed first into every family's source
// (src/gpu/kernels/source.rs); the CPU mirror is src/shard/lse.rs. How rows are walked is
// shared/rows.wgsl; the reductions across a row's lanes are shared/reduce_*.wgsl.

// Invocations per workgroup, set from Rust (`Context::workgroup_size`). Must be a power of
// two: the tree reductions below halve it.
override WG: u32 = 256u;

const FLT_MAX: f32 = 0x1.fffffep+127f;

// Online log-sum-exp state: s = Σ exp(x - m) over the values pushed so far.
//
// The empty state is m = -FLT_MAX, not -inf, so exp(m_old - m_new) is never
// exp(-inf - -inf) = NaN: a row of -inf stays (m = -FLT_MAX, s = 0) and gives
// lse = m + log(0) = -inf. A NaN logit makes exp(x - m) NaN and a +inf logit makes
// exp(inf - inf) NaN; either way s turns NaN and stays NaN, which is PyTorch's answer.
struct Lse {
    m: f32,
    s: f32,
}

// Eight values: vec4s 2q and 2q + 1 of a contiguous tensor, one load where the input is read
// 8 at a time (io/input_f32_wide.wgsl), two elsewhere.
struct Vec8 {
    a: vec4<f32>,
    b: vec4<f32>,
}

fn lse_empty() -> Lse {
    return Lse(-FLT_MAX, 0.0);
}

fn lse_push(a: Lse, x: f32) -> Lse {
    let m = max(a.m, x);
    return Lse(m, a.s * exp(a.m - m) + exp(x - m));
}

fn lse_merge(a: Lse, b: Lse) -> Lse {
    let m = max(a.m, b.m);
    return Lse(m, a.s * exp(a.m - m) + b.s * exp(b.m - m));
}

// Pushes four values (a vec4 of a contiguous row).
fn lse_push4(a: Lse, v: vec4<f32>) -> Lse {
    let m = max(a.m, max(max(v.x, v.y), max(v.z, v.w)));
    let e = exp(v - vec4<f32>(m));
    return Lse(m, a.s * exp(a.m - m) + ((e.x + e.y) + (e.z + e.w)));
}

// Pushes eight values (a Vec8) with one rescale.
fn lse_push8(a: Lse, w: Vec8) -> Lse {
    let vu = max(w.a, w.b);
    let m = max(a.m, max(max(vu.x, vu.y), max(vu.z, vu.w)));
    let e = exp(w.a - vec4<f32>(m)) + exp(w.b - vec4<f32>(m));
    return Lse(m, a.s * exp(a.m - m) + ((e.x + e.y) + (e.z + e.w)));
}

// Pushes sixteen values (two Vec8s: one trip of the loops below) with one rescale.
fn lse_push16(a: Lse, w: Vec8, v: Vec8) -> Lse {
    let vu = max(max(w.a, w.b), max(v.a, v.b));
    let m = max(a.m, max(max(vu.x, vu.y), max(vu.z, vu.w)));
    let mm = vec4<f32>(m);
    let e = (exp(w.a - mm) + exp(w.b - mm)) + (exp(v.a - mm) + exp(v.b - mm));
    return Lse(m, a.s * exp(a.m - m) + ((e.x + e.y) + (e.z + e.w)));
}

fn lse_value(a: Lse) -> f32 {
    return a.m + log(a.s);
}

// log_softmax of x in a row with state a, as (x - m) - log(s): unlike x - lse, it stays
// exact when the logits are so large (1e30) that m + log(s) rounds back to m.
fn lse_log_prob(a: Lse, x: f32) -> f32 {
    return (x - a.m) - log(a.s);
}

fn is_finite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}

// A quiet NaN, made at run time: a NaN constant expression is a shader-creation error.
fn quiet_nan() -> f32 {
    var bits = 0x7fc00000u;
    return bitcast<f32>(bits);
}

// Grids are 2-D because one dimension holds at most 65,535 workgroups.
fn linear_workgroup(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}
