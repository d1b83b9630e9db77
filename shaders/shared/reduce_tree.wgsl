// Tree reductions through workgroup memory, a fixed tree per row. Always included: the
// reductions (workgroup_lse, workgroup_sum2) are these where the device lacks SUBGROUP
// (shared/reduce_plain.wgsl), and fall back to them for rows narrower than a subgroup
// (shared/reduce_subgroup.wgsl).
var<workgroup> wg_m: array<f32, WG>;
var<workgroup> wg_s: array<f32, WG>;

// Merges one Lse per invocation within each row's `lanes` invocations, in a fixed tree
// order (so the result is bitwise reproducible); every invocation gets its row's total.
fn tree_lse(st: Lse, lid: u32, lanes: u32) -> Lse {
    wg_m[lid] = st.m;
    wg_s[lid] = st.s;
    let lane = lid % lanes;
    for (var off = lanes / 2u; off > 0u; off = off / 2u) {
        // Wait until the partner's value from the previous level is written.
        workgroupBarrier();
        if lane < off {
            let o = lse_merge(Lse(wg_m[lid], wg_s[lid]), Lse(wg_m[lid + off], wg_s[lid + off]));
            wg_m[lid] = o.m;
            wg_s[lid] = o.s;
        }
    }
    workgroupBarrier();
    let total = Lse(wg_m[lid - lane], wg_s[lid - lane]);
    // Nobody may overwrite a row's slot (a later reduction) before its lanes have read it.
    workgroupBarrier();
    return total;
}

// Sums a pair per invocation within each row's `lanes` invocations, in a fixed tree order;
// every invocation gets its row's total.
fn tree_sum2(v: vec2<f32>, lid: u32, lanes: u32) -> vec2<f32> {
    wg_m[lid] = v.x;
    wg_s[lid] = v.y;
    let lane = lid % lanes;
    for (var off = lanes / 2u; off > 0u; off = off / 2u) {
        // Wait until the partner's value from the previous level is written.
        workgroupBarrier();
        if lane < off {
            wg_m[lid] = wg_m[lid] + wg_m[lid + off];
            wg_s[lid] = wg_s[lid] + wg_s[lid + off];
        }
    }
    workgroupBarrier();
    let total = vec2<f32>(wg_m[lid - lane], wg_s[lid - lane]);
    // Nobody may overwrite a row's slot before its lanes have read it.
    workgroupBarrier();
    return total;
}
