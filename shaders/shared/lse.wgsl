// Shared by every kernel family: the workgroup size, the online log-sum-exp and the
// deterministic workgroup tree reductions. Rust prepends this file to each family's source
// (src/gpu/kernels.rs); the CPU mirror is src/cpu/lse.rs.

// Invocations per workgroup, set from Rust (`Context::workgroup_size`). Must be a power of
// two: the tree reductions below halve it.
override WG: u32 = 256u;

const FLT_MAX: f32 = 3.40282347e+38;

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

var<workgroup> wg_m: array<f32, WG>;
var<workgroup> wg_s: array<f32, WG>;

// Merges one Lse per invocation in a fixed tree order (so the result is bitwise
// reproducible) and returns the workgroup's total to every invocation.
fn workgroup_lse(st: Lse, lid: u32) -> Lse {
    wg_m[lid] = st.m;
    wg_s[lid] = st.s;
    for (var off = WG / 2u; off > 0u; off = off / 2u) {
        // Wait until the partner's value from the previous level is written.
        workgroupBarrier();
        if lid < off {
            let o = lse_merge(Lse(wg_m[lid], wg_s[lid]), Lse(wg_m[lid + off], wg_s[lid + off]));
            wg_m[lid] = o.m;
            wg_s[lid] = o.s;
        }
    }
    workgroupBarrier();
    let total = Lse(wg_m[0], wg_s[0]);
    // Nobody may overwrite slot 0 (a later reduction) before everyone has read it.
    workgroupBarrier();
    return total;
}

// Sums a pair per invocation in a fixed tree order; the total goes to every invocation.
fn workgroup_sum2(v: vec2<f32>, lid: u32) -> vec2<f32> {
    wg_m[lid] = v.x;
    wg_s[lid] = v.y;
    for (var off = WG / 2u; off > 0u; off = off / 2u) {
        // Wait until the partner's value from the previous level is written.
        workgroupBarrier();
        if lid < off {
            wg_m[lid] = wg_m[lid] + wg_m[lid + off];
            wg_s[lid] = wg_s[lid] + wg_s[lid + off];
        }
    }
    workgroupBarrier();
    let total = vec2<f32>(wg_m[0], wg_s[0]);
    // Nobody may overwrite slot 0 before everyone has read it.
    workgroupBarrier();
    return total;
}
