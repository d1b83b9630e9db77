// The roofline: how fast this adapter streams a buffer, to set every op's GB/s beside.
//
// read_sum: a trivial read kernel. Each invocation adds up pairs of vec4s of src with a grid
// stride, read through the same src_8 the loss kernels' logits use (shared/dtype_f32*.wgsl:
// 8 at a time as vec4<u64> on CPU adapters with SHADER_INT64, else two vec4<f32>), so an op's
// percentage of it compares like with like. Workgroup 0's invocations each write their sum to
// out (every invocation writes, so the reads cannot be optimised away; only the first WG
// values are kept).
// Traffic: 4 bytes read per element, next to nothing written.
//
// Bindings (keep in sync with `Family::Bandwidth` in src/gpu/kernels.rs and
// `BandwidthParams` in src/gpu/bandwidth.rs):
//   0 params: uniform BandwidthParams
//   1 src: storage, read        [n_pairs * 8] f32, declared by Rust before this file
//   2 out: storage, read_write  [total invocations]

struct BandwidthParams {
    n_pairs: u32,
    stride: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: BandwidthParams;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn read_sum(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let id = linear_workgroup(wid, nwg) * WG + lid;
    var acc = vec4<f32>(0.0);
    for (var q = id; q < params.n_pairs; q += params.stride) {
        let w = src_8(q);
        acc += w.a + w.b;
    }
    out[id] = acc.x + acc.y + acc.z + acc.w;
}
