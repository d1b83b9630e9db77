// matmul: C = alpha · A·Bᵀ (+ C when ACCUMULATE) (+ bias): the products linear_cross_entropy
// is built on.
//
// Math: C(m, n) = alpha · Σ_k A(m, k) · B(n, k) [+ C(m, n)] [+ bias(n)], for m < M, n < N, the
// sum in increasing k, in f32.
//
// Shapes, by strides in f32 elements, so that one kernel takes each product of the loss:
//   A(m, k) = a[a_off + m · a_sm + k · a_sk]
//   B(n, k) = b[b_off + n · b_sn + k · b_sk]
//   C(m, n) = c[c_off + m · c_sm + n]
//   logits = X·Wᵀ:  A = X [rows, D] (a_sk = 1), B = W [C, D] (b_sk = 1)
//   dX = G·W:       A = G [rows, C] (a_sk = 1), B(d, c) = W[c, d] (b_sn = 1, b_sk = D)
//   dW += Gᵀ·X:     A(c, r) = G[r, c] (a_sm = 1, a_sk = C), B(d, r) = X[r, d] (b_sn = 1, b_sk = D)
//   db += 1ᵀ·G:     M = 1, A = a row of ones (a_sm = 0, a_sk = 1), B as for dW
//
// A product whose operands pass one binding is cut by the host into pieces over M, N and K,
// each binding a window of every buffer (src/geometry/windows.rs): the offsets here are within
// the windows.
//
// Geometry (src/geometry/tiles.rs, which property-tests it): each invocation owns a TILE × TILE
// block of C and sums all of K for it in registers; a workgroup of 8 × 8 invocations owns a
// 64 × 64 block; workgroup t of a flat (2-D past 65,535) grid is block (t / tiles_n, t % tiles_n),
// or (t % tiles_m, t / tiles_m) with n_major (`block_of`).
// Rows and columns past M and N are read clamped to the last one and never written.
//
// Why this design: every C element is written by exactly one invocation, summed in one fixed
// order, so results are bitwise deterministic with no atomics. There is no workgroup memory and
// no barrier: on CPU adapters workgroup memory costs what a buffer load costs and a barrier turns
// the shader into coroutines (a study of matmuls on lavapipe measured shared-memory tiling at
// half the speed of register tiling there). The tile is summed as 2 × 2 blocks of 4 × 4, 4 k at
// a time as mat4x4 products, so that accumulators and operands stay in registers (indexed
// arrays were measured at 1.25 GFLOP/s on lavapipe: they live in memory). Each operand is read
// as vec4s along k or along its rows where its strides allow (LAYOUT_*): 16 loads per 256
// multiply-adds; else one element at a time.
//
// Bytes moved: A is read tiles_n times and B tiles_m times, 4 · (M K tiles_n + N K tiles_m)
// bytes (mostly from cache), and C written once: 4 M N (read too when ACCUMULATE).
//
// Bindings (keep in sync with `Family::Matmul` in src/gpu/kernels/source.rs and `MatmulParams`
// in src/gpu/ops/linear/matmul.rs):
//   0 params: uniform MatmulParams
//   1 a: storage, read        A's elements, as vec4s (padded to whole vec4s)
//   2 b: storage, read        B's elements, as vec4s
//   3 bias: storage, read     [bias_off + N] f32 (read only when has_bias)
//   4 c: storage, read_write  C's elements

// MatmulParams: shaders/shared/matmul_params.wgsl (one declaration for both product shaders).

const TILE: u32 = 8u;
const BLOCK: u32 = 64u;

// One element at a time, by the strides: any offsets and strides.
const LAYOUT_SCALAR: u32 = 0u;
// vec4s along k: k stride 1, the offset and row stride multiples of 4 (X and W of the
// logits, G of dX).
const LAYOUT_ALONG_K: u32 = 1u;
// vec4s along the rows: row stride 1, the offset and k stride multiples of 4 (W of dX, G and
// X of dW). Rows past M (N) in the last vec4 are read, from our padding, and never written.
const LAYOUT_ALONG_ROWS: u32 = 2u;

@group(0) @binding(0) var<uniform> params: MatmulParams;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

// The element offset of A(m, 0), m clamped inside A: rows past M are read, never written.
fn a_row(m: u32) -> u32 {
    return params.a_off + min(m, params.m - 1u) * params.a_sm;
}

// The element offset of B(n, 0), as a_row.
fn b_row(n: u32) -> u32 {
    return params.b_off + min(n, params.n - 1u) * params.b_sn;
}

// A(rows m .. m + 4, k).
fn a_col(m: u32, k: u32) -> vec4<f32> {
    var v: vec4<f32>;
    for (var i = 0u; i < 4u; i++) {
        let at = a_row(m + i) + k * params.a_sk;
        v[i] = a[at >> 2u][at & 3u];
    }
    return v;
}

// B(rows n .. n + 4, k).
fn b_col(n: u32, k: u32) -> vec4<f32> {
    var v: vec4<f32>;
    for (var i = 0u; i < 4u; i++) {
        let at = b_row(n + i) + k * params.b_sk;
        v[i] = b[at >> 2u][at & 3u];
    }
    return v;
}

// A(rows r .. r + 4, k .. k + 4): column j holds k + j, row i the row r + i.
fn a_block(r: u32, k: u32) -> mat4x4<f32> {
    if params.a_layout == LAYOUT_ALONG_K {
        return transpose(mat4x4<f32>(
            a[(a_row(r) + k) >> 2u],
            a[(a_row(r + 1u) + k) >> 2u],
            a[(a_row(r + 2u) + k) >> 2u],
            a[(a_row(r + 3u) + k) >> 2u],
        ));
    }
    if params.a_layout == LAYOUT_ALONG_ROWS {
        let at = (a_row(r) + k * params.a_sk) >> 2u;
        let step = params.a_sk >> 2u;
        return mat4x4<f32>(a[at], a[at + step], a[at + 2u * step], a[at + 3u * step]);
    }
    return mat4x4<f32>(
        a_col(r, k),
        a_col(r, k + 1u),
        a_col(r, k + 2u),
        a_col(r, k + 3u),
    );
}

// B(rows r .. r + 4, k .. k + 4) turned: column j holds the row r + j, row i k + i.
fn b_block(r: u32, k: u32) -> mat4x4<f32> {
    if params.b_layout == LAYOUT_ALONG_K {
        return mat4x4<f32>(
            b[(b_row(r) + k) >> 2u],
            b[(b_row(r + 1u) + k) >> 2u],
            b[(b_row(r + 2u) + k) >> 2u],
            b[(b_row(r + 3u) + k) >> 2u],
        );
    }
    if params.b_layout == LAYOUT_ALONG_ROWS {
        let at = (b_row(r) + k * params.b_sk) >> 2u;
        let step = params.b_sk >> 2u;
        return transpose(mat4x4<f32>(b[at], b[at + step], b[at + 2u * step], b[at + 3u * step]));
    }
    return transpose(mat4x4<f32>(
        b_col(r, k),
        b_col(r, k + 1u),
        b_col(r, k + 2u),
        b_col(r, k + 3u),
    ));
}

// u ⊗ v: column j is u · v[j].
fn outer(u: vec4<f32>, v: vec4<f32>) -> mat4x4<f32> {
    return mat4x4<f32>(u * v.x, u * v.y, u * v.z, u * v.w);
}

// Writes the 4 × 4 block `acc` (column j: C column n + j) at C(m.., n..), inside C.
fn store(acc: mat4x4<f32>, m: u32, n: u32) {
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            if m + i < params.m && n + j < params.n {
                let at = params.c_off + (m + i) * params.c_sm + n + j;
                var v = params.alpha * acc[j][i];
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

@compute @workgroup_size(8, 8)
fn matmul(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let t = wid.x + wid.y * nwg.x;
    let tiles_m = (params.m + BLOCK - 1u) / BLOCK;
    if t >= tiles_m * params.tiles_n {
        return;
    }
    let block = block_of(t, tiles_m);
    let m0 = block.x * BLOCK + lid.y * TILE;
    let n0 = block.y * BLOCK + lid.x * TILE;
    // The tile as 2 × 2 blocks of 4 × 4, each a sum over k in a fixed order: 4 k at a time
    // as 4 × 4 matrix products (16 vec4 loads per 256 multiply-adds where a layout allows),
    // then the last K % 4 one at a time.
    var acc00: mat4x4<f32>;
    var acc01: mat4x4<f32>;
    var acc10: mat4x4<f32>;
    var acc11: mat4x4<f32>;
    let k4 = params.k & ~3u;
    for (var k = 0u; k < k4; k += 4u) {
        let a0 = a_block(m0, k);
        let a1 = a_block(m0 + 4u, k);
        let b0 = b_block(n0, k);
        let b1 = b_block(n0 + 4u, k);
        acc00 += a0 * b0;
        acc01 += a0 * b1;
        acc10 += a1 * b0;
        acc11 += a1 * b1;
    }
    for (var k = k4; k < params.k; k++) {
        let a0 = a_col(m0, k);
        let a1 = a_col(m0 + 4u, k);
        let b0 = b_col(n0, k);
        let b1 = b_col(n0 + 4u, k);
        acc00 += outer(a0, b0);
        acc01 += outer(a0, b1);
        acc10 += outer(a1, b0);
        acc11 += outer(a1, b1);
    }
    store(acc00, m0, n0);
    store(acc01, m0, n0 + 4u);
    store(acc10, m0 + 4u, n0);
    store(acc11, m0 + 4u, n0 + 4u);
}

// The block (along M, along N) that workgroup t owns, by `n_major` (src/geometry/tiles.rs).
fn block_of(t: u32, tiles_m: u32) -> vec2<u32> {
    if params.n_major == 1u {
        return vec2<u32>(t % tiles_m, t / tiles_m);
    }
    return vec2<u32>(t / params.tiles_n, t % params.tiles_n);
}
