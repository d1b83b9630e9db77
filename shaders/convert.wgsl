// Results rearranged for the caller.
//
// pack_half: f32 results packed into the input's 16-bit dtype, rounded to nearest even: for
// outputs (log_softmax, softmax, the gradient) asked for in f16 or bf16.
//
// Shapes: src holds n f32 values; dst holds ceil(n / 2) u32 words, element 2k in the low
// half of word k (little-endian, as an array of u16). One invocation writes one whole word,
// so no two invocations share a word. An odd n leaves the last high half 0.
// The rounding is written out with integer operations: WGSL leaves the rounding of f32 to
// f16 conversions (pack2x16float) to the implementation. CPU mirror: `half::f16::from_f32`
// and `half::bf16::from_f32`, which tests compare against bit for bit.
// Traffic: 4 bytes read + 2 written per value.
//
// gather: dst[k] = src[k * stride + first] for k < n, bit for bit: e.g. each row's lse out
// of the per-row stats vec4s (M, S, Q, lse), stride 4 (4 * segments for split rows), first 3.
//
// widen_half: 16-bit values (f16 for mode 1, bf16 for mode 2; two a word, low first) widened
// to f32, exactly: dst[k] = the f32 bits of element k of src, for k < n (linear_cross_entropy's
// 16-bit device tensors, which its matmul reads as f32). src is bound as words and read as
// bits. Traffic: 2 bytes read + 4 written per value.
//
// Bindings (keep in sync with `Family::Convert` in src/gpu/kernels/source.rs and `ConvertParams`
// in src/gpu/ops/convert.rs):
//   0 params: uniform ConvertParams
//   1 src: storage, read        pack_half: [n] f32; gather: [(n - 1) * stride + first + 1];
//                               widen_half: [ceil(n / 2)] words
//   2 dst: storage, read_write  pack_half: [ceil(n / 2)] u32; gather, widen_half: [n]

struct ConvertParams {
    n: u32,
    // pack_half, widen_half: 1 for f16, 2 for bf16
    mode: u32,
    // gather only
    stride: u32,
    first: u32,
}

const TO_F16: u32 = 1u;

@group(0) @binding(0) var<uniform> params: ConvertParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;

fn bf16_bits(x: f32) -> u32 {
    let b = bitcast<u32>(x);
    if (b & 0x7fffffffu) > 0x7f800000u {
        // NaN stays a quiet NaN of the same sign.
        return (b >> 16u) | 0x40u;
    }
    return (b + 0x7fffu + ((b >> 16u) & 1u)) >> 16u;
}

fn f16_bits(x: f32) -> u32 {
    let b = bitcast<u32>(x);
    let sign = (b >> 16u) & 0x8000u;
    let a = b & 0x7fffffffu;
    if a > 0x7f800000u {
        return sign | 0x7e00u;
    }
    if a >= 0x477ff000u {
        // 65520 and above round to infinity.
        return sign | 0x7c00u;
    }
    if a >= 0x38800000u {
        // Normal: rebias the exponent (127 - 15 = 112), then round 13 mantissa bits away.
        let v = a - 0x38000000u;
        return sign | ((v + 0xfffu + ((v >> 13u) & 1u)) >> 13u);
    }
    if a < 0x33000000u {
        // Below 2^-25: rounds to zero.
        return sign;
    }
    // Subnormal: the value in units of 2^-24 is m >> (126 - e), rounded to nearest even.
    let e = a >> 23u;
    let m = (a & 0x7fffffu) | 0x800000u;
    let shift = 126u - e;
    let half = 1u << (shift - 1u);
    let rem = m & ((1u << shift) - 1u);
    var q = m >> shift;
    if rem > half || (rem == half && (q & 1u) == 1u) {
        q += 1u;
    }
    return sign | q;
}

fn to_bits(x: f32) -> u32 {
    if params.mode == TO_F16 {
        return f16_bits(x);
    }
    return bf16_bits(x);
}

@compute @workgroup_size(WG)
fn pack_half(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let k = linear_workgroup(wid, nwg) * WG + lid;
    let i = 2u * k;
    if i >= params.n {
        return;
    }
    var word = to_bits(src[i]);
    if i + 1u < params.n {
        word |= to_bits(src[i + 1u]) << 16u;
    }
    dst[k] = word;
}

@compute @workgroup_size(WG)
fn gather(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let k = linear_workgroup(wid, nwg) * WG + lid;
    if k < params.n {
        dst[k] = bitcast<u32>(src[k * params.stride + params.first]);
    }
}

@compute @workgroup_size(WG)
fn widen_half(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let k = linear_workgroup(wid, nwg) * WG + lid;
    if k >= params.n {
        return;
    }
    let w = bitcast<u32>(src[k >> 1u]);
    // A bf16 is the top half of an f32; an f16 widens exactly through unpack2x16float.
    var pair = vec2<f32>(bitcast<f32>(w << 16u), bitcast<f32>(w & 0xffff0000u));
    if params.mode == TO_F16 {
        pair = unpack2x16float(w);
    }
    dst[k] = bitcast<u32>(pair[k & 1u]);
}
