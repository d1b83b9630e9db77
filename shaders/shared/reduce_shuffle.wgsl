// Workgroup reductions where a workgroup is exactly one subgroup (the device has SUBGROUP and
// a fixed subgroup size equal to WG, as lavapipe's 8): a butterfly of subgroupShuffleXor
// within each row's lanes, largest offset first, and no barrier. Both merges are commutative
// bitwise (max, and one IEEE addition of two products), so every lane ends with exactly the
// value reduce_tree.wgsl's tree leaves in lane 0: the same results as the tree, with no
// workgroup memory. lavapipe runs a shader that has any barrier as coroutines suspended at
// each one, so dropping them pays (docs/PERFORMANCE.md). The in-place gradient adds the one
// barrier it needs (grad.wgsl).

fn workgroup_lse(st: Lse, lid: u32, lanes: u32) -> Lse {
    var t = st;
    for (var off = lanes / 2u; off > 0u; off = off / 2u) {
        t = lse_merge(t, Lse(subgroupShuffleXor(t.m, off), subgroupShuffleXor(t.s, off)));
    }
    return t;
}

fn workgroup_sum2(v: vec2<f32>, lid: u32, lanes: u32) -> vec2<f32> {
    var t = v;
    for (var off = lanes / 2u; off > 0u; off = off / 2u) {
        t = t + subgroupShuffleXor(t, off);
    }
    return t;
}
