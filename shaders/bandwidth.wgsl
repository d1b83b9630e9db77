// The roofline: how fast this adapter streams a buffer, to set every op's GB/s beside.
// The loss kernels' first pass reads the logits; their second reads them again and writes an
// output: read_sum and write_fill time each side alone.
//
// read_sum: a trivial read kernel. Each invocation adds up pairs of vec4s of the logits in its
// workgroup's block (`block`), read through the same logits_8 the loss kernels use
// (io/input_f32*.wgsl: 8 at a time as vec4<u64> on CPU adapters with SHADER_INT64, else two
// vec4<f32>), so an op's
// percentage of it compares like with like. Workgroup 0's invocations each write their sum to
// out (every invocation writes, so the reads cannot be optimised away; only the first WG
// values are kept).
// Traffic: 4 bytes read per element, next to nothing written.
//
// write_fill: each invocation writes pairs of vec4s of the result in its workgroup's block,
// through the same result_put8 the kernels' row outputs use (io/result_f32*.wgsl: 8 a store as
// vec4<u64> on CPU adapters with SHADER_INT64, else two vec4<f32>).
// Traffic: 4 bytes written per element, nothing read.
//
// Bindings (keep in sync with `Family::Bandwidth` in src/gpu/kernels/source.rs and
// `BandwidthParams` in src/gpu/ops/bandwidth.rs):
//   0 params: uniform BandwidthParams
//   1 logits: storage, read     [n_pairs * 8] f32 (io/input_f32*.wgsl)
//   2 out: storage, read_write  [total invocations]
//   3 result: storage, rw       [n_pairs * 8] f32 (io/result_f32*.wgsl)

struct BandwidthParams {
    n_pairs: u32,
    block: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: BandwidthParams;
@group(0) @binding(1) var<storage, read> logits: array<InputWord>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> result: array<ResultWord>;

// The pairs [x, y) of this workgroup: a contiguous block of params.block pairs, its lanes
// interleaved in it, as a row kernel walks a row (adjacent lanes on adjacent pairs for GPUs,
// one contiguous stream a thread for CPU adapters).
fn block(wid: vec3<u32>, nwg: vec3<u32>) -> vec2<u32> {
    let start = linear_workgroup(wid, nwg) * params.block;
    return vec2<u32>(min(start, params.n_pairs), min(start + params.block, params.n_pairs));
}

@compute @workgroup_size(WG)
fn read_sum(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let id = linear_workgroup(wid, nwg) * WG + lid;
    let b = block(wid, nwg);
    var acc = vec4<f32>(0.0);
    for (var q = b.x + lid; q < b.y; q += WG) {
        let w = logits_8(q);
        acc += w.a + w.b;
    }
    out[id] = acc.x + acc.y + acc.z + acc.w;
}

@compute @workgroup_size(WG)
fn write_fill(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let b = block(wid, nwg);
    for (var q = b.x + lid; q < b.y; q += WG) {
        let v = vec4<f32>(f32(q));
        result_put8(q, Vec8(v, v));
    }
}
