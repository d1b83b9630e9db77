// The workgroup reductions without SUBGROUP: the trees of shared/reduce_tree.wgsl.

fn workgroup_lse(st: Lse, lid: u32, lanes: u32) -> Lse {
    return tree_lse(st, lid, lanes);
}

fn workgroup_sum2(v: vec2<f32>, lid: u32, lanes: u32) -> vec2<f32> {
    return tree_sum2(v, lid, lanes);
}
