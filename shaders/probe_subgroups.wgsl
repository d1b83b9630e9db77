// Does this adapter lay its subgroups out as shared/reduce_subgroup.wgsl and
// reduce_shuffle.wgsl assume: runs of `width` consecutive local_invocation_index values,
// starting at multiples of `width`? WGSL does not promise it, so src/gpu/runtime/probe.rs runs this
// once per Context, and a device where it fails reduces through workgroup memory instead.
//
// Bindings: 0 ok: storage, read_write [workgroups * WG] u32, 1 where the invocation's
// subgroup is the run [lid - lid % width, + width), else 0.

override WG: u32 = 64u;

@group(0) @binding(0) var<storage, read_write> ok: array<u32>;

@compute @workgroup_size(WG)
fn probe(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let width = subgroupAdd(1u);
    let first = subgroupMin(lid);
    let last = subgroupMax(lid);
    let run = width > 0u && first == lid - lid % width && last == first + width - 1u;
    ok[wid.x * WG + lid] = select(0u, 1u, run);
}
