// matmul_lanes: C = alpha · A·Bᵀ (+ C when accumulate) (+ bias), the CPU-adapter design of the
// products in matmul.wgsl: the same math, strides and uniform (MatmulParams, declared once in
// shaders/shared/matmul_params.wgsl).
//
// Math: C(m, n) = alpha · Σ_k A(m, k) · B(n, k) [+ C(m, n)] [+ bias(n)], for m < M, n < N and
// k < K, the sum in increasing k, 8 k a step, in f32. A last step past K reads whole units of 8
// (inside the buffer, the host checks) and zeroes what lies past K in both operands, so that
// nothing there (not even an Inf) reaches C.
//
// Shapes: A(m, k) = a[a_off + m · a_sm + k · a_sk], B(n, k) = b[b_off + n · b_sn + k · b_sk],
// C(m, n) = c[c_off + m · c_sm + n], as in matmul.wgsl. Each operand is read 8 floats a load,
// as vec4<u64>, along k (LAYOUT_ALONG_K: k stride 1) or along its rows (LAYOUT_ALONG_ROWS: row
// stride 1), with the offset and the other stride multiples of 8 (the host checks). Offsets are
// within the windows the host binds (pieces of a product past one binding, as in matmul.wgsl).
//
// Geometry (src/geometry/tiles.rs, which property-tests it): a workgroup is one subgroup of 8
// lanes and owns a LANE_ROWS × 64 block of C; lane l owns its LANE_ROWS rows × the 8 columns
// n0 + 8 l .. n0 + 8 l + 8. Workgroup t of a flat (2-D past 65,535) grid is block
// (t / tiles_n, t % tiles_n), or (t % tiles_m, t / tiles_m) with n_major (`block_of`). Rows and
// columns past M and N are read clamped (or from whole vec4<u64> units of our padding) and never
// written.
//
// Why this design (a study of matmuls on lavapipe measured it; this is its best adapted
// to strided operands): lavapipe runs a workgroup of 8 as one 8-wide SIMD vector and executes
// every load instruction as a loop over the lanes with a bounds check, so what counts is
// multiply-adds per load instruction; a uniform address is no cheaper. So each lane loads a
// different 8 floats of A and the lanes share them by subgroupBroadcast at constant lanes,
// and each lane loads the 8 × 8 block of B its own columns need: per 8 k, 2 + 8 loads for
// 1024 multiply-adds (matmul.wgsl: 16 loads of 4 for 256). No workgroup memory, no barrier,
// no atomics: every C element is summed by one lane in one fixed order, so results are
// bitwise deterministic. Needs SUBGROUP (with subgroups of exactly 8) and SHADER_INT64:
// chosen in `Tuning::lane_matmul` for CPU adapters only; GPUs and GL take matmul.wgsl.
//
// Bytes moved: A is read tiles_n times and B tiles_m times, 4 · (M K tiles_n + N K tiles_m),
// mostly from cache; C written once, 4 M N (read too when accumulating).
//
// Bindings (Family::MatmulLanes in src/gpu/kernels/source.rs, MatmulParams in
// src/gpu/ops/linear/matmul.rs):
//   0 params: uniform MatmulParams
//   1 a: storage, read        A's elements as vec4<u64> (buffer a whole number of 32 bytes)
//   2 b: storage, read        B's elements as vec4<u64>
//   3 bias: storage, read     [bias_off + N] f32 (read only when has_bias)
//   4 c: storage, read_write  C's elements

// MatmulParams: shaders/shared/matmul_params.wgsl.

// Rows of C each lane (and workgroup) owns: 4 groups of 4.
const LANE_ROWS: u32 = 16u;
const BLOCK_N: u32 = 64u;
const LAYOUT_ALONG_K: u32 = 1u;

@group(0) @binding(0) var<uniform> params: MatmulParams;
@group(0) @binding(1) var<storage, read> a: array<vec4<u64>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<u64>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

// 8 floats, as loaded: `lo` the first 4, `hi` the last 4.
struct Eight {
    lo: vec4<f32>,
    hi: vec4<f32>,
}

fn unpack2(v: u64) -> vec2<f32> {
    return vec2<f32>(bitcast<f32>(u32(v & 0xfffffffflu)), bitcast<f32>(u32(v >> 32u)));
}

// v with the floats from index `kept` on (of 0..8) zeroed.
fn keep(v: Eight, kept: u32) -> Eight {
    let zero = vec4<f32>(0.0);
    return Eight(
        select(zero, v.lo, vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(kept)),
        select(zero, v.hi, vec4<u32>(4u, 5u, 6u, 7u) < vec4<u32>(kept)),
    );
}

// v, or zeros where `live` is false.
fn live_or_zero(v: Eight, live: bool) -> Eight {
    return Eight(select(vec4<f32>(0.0), v.lo, live), select(vec4<f32>(0.0), v.hi, live));
}

// The 8 floats at element `at` (a multiple of 8) of `a` or `b`.
fn a8(at: u32) -> Eight {
    let v = a[at >> 3u];
    return Eight(vec4<f32>(unpack2(v.x), unpack2(v.y)), vec4<f32>(unpack2(v.z), unpack2(v.w)));
}

fn b8(at: u32) -> Eight {
    let v = b[at >> 3u];
    return Eight(vec4<f32>(unpack2(v.x), unpack2(v.y)), vec4<f32>(unpack2(v.z), unpack2(v.w)));
}

// Column j: lane j's v (j = 0..3), and lanes 4..7's.
fn lanes0123(v: vec4<f32>) -> mat4x4<f32> {
    return mat4x4<f32>(
        subgroupBroadcast(v, 0u),
        subgroupBroadcast(v, 1u),
        subgroupBroadcast(v, 2u),
        subgroupBroadcast(v, 3u),
    );
}

fn lanes4567(v: vec4<f32>) -> mat4x4<f32> {
    return mat4x4<f32>(
        subgroupBroadcast(v, 4u),
        subgroupBroadcast(v, 5u),
        subgroupBroadcast(v, 6u),
        subgroupBroadcast(v, 7u),
    );
}

// Four rows of A over 8 k: column c of `lo` holds row c at k .. k + 4, of `hi` at k + 4 .. k + 8.
struct Rows4 {
    lo: mat4x4<f32>,
    hi: mat4x4<f32>,
}

// The 8 × 8 block of B a lane's columns need over 8 k: `klo_nlo[i][j]` is B(n + j, k + i) for
// i, j < 4; `khi` for k + 4 + i, `nhi` for n + 4 + j.
struct BBlock {
    klo_nlo: mat4x4<f32>,
    klo_nhi: mat4x4<f32>,
    khi_nlo: mat4x4<f32>,
    khi_nhi: mat4x4<f32>,
}

// Rows m0 + 8 j + lane at k .. k + 8 (along k) or rows m0 + 8 j .. + 8 at k + lane (along rows),
// j = 0, 1: this lane's share of A's LANE_ROWS × 8 block; k from k + kept on read as zero.
fn a_share(m0: u32, k: u32, kept: u32, lane: u32, j: u32) -> Eight {
    if params.a_layout == LAYOUT_ALONG_K {
        let row = min(m0 + 8u * j + lane, params.m - 1u);
        return keep(a8(params.a_off + row * params.a_sm + k), kept);
    }
    let row = min(m0 + 8u * j, (params.m - 1u) & ~7u);
    let at = params.a_off + min(k + lane, params.k - 1u) * params.a_sk + row;
    return live_or_zero(a8(at), lane < kept);
}

// The four rows of group g (rows m0 + 4 g .. + 4) from the lanes' shares s0 (j = 0) or s1.
fn a_rows(s: Eight, upper: bool) -> Rows4 {
    if params.a_layout == LAYOUT_ALONG_K {
        // Lane r holds row 8 j + r over k: rows 0..3 are lanes 0..3, rows 4..7 lanes 4..7.
        if upper {
            return Rows4(lanes4567(s.lo), lanes4567(s.hi));
        }
        return Rows4(lanes0123(s.lo), lanes0123(s.hi));
    }
    // Lane i holds k + i over rows 8 j .. + 8: transpose so that columns are rows.
    let v = select(s.lo, s.hi, upper);
    return Rows4(transpose(lanes0123(v)), transpose(lanes4567(v)));
}

// B's 8 × 8 block for columns n .. n + 8 (n a multiple of 8) at k .. k + 8, zero from k + kept.
fn b_block(n: u32, k: u32, kept: u32) -> BBlock {
    if params.b_layout == LAYOUT_ALONG_K {
        var z: array<Eight, 8>;
        for (var j = 0u; j < 8u; j++) {
            z[j] = keep(b8(params.b_off + min(n + j, params.n - 1u) * params.b_sn + k), kept);
        }
        return BBlock(
            transpose(mat4x4<f32>(z[0].lo, z[1].lo, z[2].lo, z[3].lo)),
            transpose(mat4x4<f32>(z[4].lo, z[5].lo, z[6].lo, z[7].lo)),
            transpose(mat4x4<f32>(z[0].hi, z[1].hi, z[2].hi, z[3].hi)),
            transpose(mat4x4<f32>(z[4].hi, z[5].hi, z[6].hi, z[7].hi)),
        );
    }
    let col = min(n, (params.n - 1u) & ~7u);
    var w: array<Eight, 8>;
    for (var i = 0u; i < 8u; i++) {
        let at = params.b_off + min(k + i, params.k - 1u) * params.b_sk + col;
        w[i] = live_or_zero(b8(at), i < kept);
    }
    return BBlock(
        mat4x4<f32>(w[0].lo, w[1].lo, w[2].lo, w[3].lo),
        mat4x4<f32>(w[0].hi, w[1].hi, w[2].hi, w[3].hi),
        mat4x4<f32>(w[4].lo, w[5].lo, w[6].lo, w[7].lo),
        mat4x4<f32>(w[4].hi, w[5].hi, w[6].hi, w[7].hi),
    );
}

// Writes rows m .. m + 4 (column c of acc: row m + c) of columns n .. n + 4, inside C.
fn store4(acc: mat4x4<f32>, m: u32, n: u32) {
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            if m + i < params.m && n + j < params.n {
                let at = params.c_off + (m + i) * params.c_sm + n + j;
                var v = params.alpha * acc[i][j];
                if params.has_bias == 1u {
                    v += bias[params.bias_off + n + j];
                }
                if params.accumulate == 1u {
                    v += c[at];
                }
                c[at] = v;
            }
        }
    }
}

@compute @workgroup_size(8)
fn matmul_lanes(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let t = wid.x + wid.y * nwg.x;
    let tiles_m = (params.m + LANE_ROWS - 1u) / LANE_ROWS;
    if t >= tiles_m * params.tiles_n {
        return;
    }
    let block = block_of(t, tiles_m);
    let m0 = block.x * LANE_ROWS;
    let n = block.y * BLOCK_N + 8u * lane;
    // acc_g_lo[c][j] = C(m0 + 4 g + c, n + j), acc_g_hi for n + 4 + j.
    var acc0_lo: mat4x4<f32>;
    var acc0_hi: mat4x4<f32>;
    var acc1_lo: mat4x4<f32>;
    var acc1_hi: mat4x4<f32>;
    var acc2_lo: mat4x4<f32>;
    var acc2_hi: mat4x4<f32>;
    var acc3_lo: mat4x4<f32>;
    var acc3_hi: mat4x4<f32>;
    for (var k = 0u; k < params.k; k += 8u) {
        let kept = min(params.k - k, 8u);
        let s0 = a_share(m0, k, kept, lane, 0u);
        let s1 = a_share(m0, k, kept, lane, 1u);
        let bb = b_block(n, k, kept);
        let r0 = a_rows(s0, false);
        acc0_lo += bb.klo_nlo * r0.lo + bb.khi_nlo * r0.hi;
        acc0_hi += bb.klo_nhi * r0.lo + bb.khi_nhi * r0.hi;
        let r1 = a_rows(s0, true);
        acc1_lo += bb.klo_nlo * r1.lo + bb.khi_nlo * r1.hi;
        acc1_hi += bb.klo_nhi * r1.lo + bb.khi_nhi * r1.hi;
        let r2 = a_rows(s1, false);
        acc2_lo += bb.klo_nlo * r2.lo + bb.khi_nlo * r2.hi;
        acc2_hi += bb.klo_nhi * r2.lo + bb.khi_nhi * r2.hi;
        let r3 = a_rows(s1, true);
        acc3_lo += bb.klo_nlo * r3.lo + bb.khi_nlo * r3.hi;
        acc3_hi += bb.klo_nhi * r3.lo + bb.khi_nhi * r3.hi;
    }
    store4(acc0_lo, m0, n);
    store4(acc0_hi, m0, n + 4u);
    store4(acc1_lo, m0 + 4u, n);
    store4(acc1_hi, m0 + 4u, n + 4u);
    store4(acc2_lo, m0 + 8u, n);
    store4(acc2_hi, m0 + 8u, n + 4u);
    store4(acc3_lo, m0 + 12u, n);
    store4(acc3_hi, m0 + 12u, n + 4u);
}

// The block (along M, along N) that workgroup t owns, by `n_major` (src/geometry/tiles.rs).
fn block_of(t: u32, tiles_m: u32) -> vec2<u32> {
    if params.n_major == 1u {
        return vec2<u32>(t % tiles_m, t / tiles_m);
    }
    return vec2<u32>(t / params.tiles_n, t % params.tiles_n);
}
