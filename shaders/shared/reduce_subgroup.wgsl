// Workgroup reductions with subgroup operations (the device has SUBGROUP): each subgroup
// reduces in hardware, then the row's subgroups are merged in a fixed order through workgroup
// memory. Rows narrower than a subgroup (several rows in one subgroup) take the tree,
// since WGSL has no clustered reductions. The subgroup's own reduction order is fixed by the
// hardware, so results are reproducible run to run on one adapter.

// wg_m and wg_s are shared/reduce_tree.wgsl's.
var<workgroup> wg_subgroup_size: u32;

// The subgroup size, uniform across the workgroup (a barrier makes it so for the analysis).
fn subgroup_width(lid: u32) -> u32 {
    let width = subgroupAdd(1u);
    if lid == 0u {
        wg_subgroup_size = width;
    }
    return workgroupUniformLoad(&wg_subgroup_size);
}

fn workgroup_lse(st: Lse, lid: u32, lanes: u32) -> Lse {
    let width = subgroup_width(lid);
    if lanes < width || width < 2u {
        return tree_lse(st, lid, lanes);
    }
    let m = subgroupMax(st.m);
    let s = subgroupAdd(st.s * exp(st.m - m));
    let lane = lid % lanes;
    if lid % width == 0u {
        wg_m[lid / width] = m;
        wg_s[lid / width] = s;
    }
    // Wait until every subgroup of the row has written its total.
    workgroupBarrier();
    let first = (lid - lane) / width;
    var total = Lse(wg_m[first], wg_s[first]);
    for (var k = 1u; k < lanes / width; k++) {
        total = lse_merge(total, Lse(wg_m[first + k], wg_s[first + k]));
    }
    // Nobody may overwrite the slots before every lane of the row has read them.
    workgroupBarrier();
    return total;
}

fn workgroup_sum2(v: vec2<f32>, lid: u32, lanes: u32) -> vec2<f32> {
    let width = subgroup_width(lid);
    if lanes < width || width < 2u {
        return tree_sum2(v, lid, lanes);
    }
    let t = subgroupAdd(v);
    let lane = lid % lanes;
    if lid % width == 0u {
        wg_m[lid / width] = t.x;
        wg_s[lid / width] = t.y;
    }
    // Wait until every subgroup of the row has written its total.
    workgroupBarrier();
    let first = (lid - lane) / width;
    var total = vec2<f32>(wg_m[first], wg_s[first]);
    for (var k = 1u; k < lanes / width; k++) {
        total += vec2<f32>(wg_m[first + k], wg_s[first + k]);
    }
    // Nobody may overwrite the slots before every lane of the row has read them.
    workgroupBarrier();
    return total;
}
