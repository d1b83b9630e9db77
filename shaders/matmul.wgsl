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
//   db += Gᵀ·1:     N = 1, B = one 1.0 (b_sn = b_sk = 0)
//
// Geometry (src/geometry/tiles.rs, which property-tests it): each invocation owns a TILE × TILE
// block of C and sums all of K for it in registers; a workgroup of 8 × 8 invocations owns a
// 64 × 64 block; workgroup t of a flat (2-D past 65,535) grid is block (t / tiles_n, t % tiles_n).
// Rows and columns past M and N are read clamped to the last one and never written.
//
// Why this design: every C element is written by exactly one invocation, summed in one fixed
// order, so results are bitwise deterministic with no atomics. There is no workgroup memory and
// no barrier: on CPU adapters workgroup memory costs what a buffer load costs and a barrier turns
// the shader into coroutines (../shared/LAVAPIPE_MATMUL.md measured shared-memory tiling at
// half the speed of register tiling there). Where both operands are contiguous along K with
// vec4-aligned rows (VEC_K), they are read 4 k at a time as vec4s: 16 loads per 256 FMAs.
//
// Bytes moved: A is read tiles_n times and B tiles_m times, 4 · (M K tiles_n + N K tiles_m)
// bytes (mostly from cache), and C written once: 4 M N (read too when ACCUMULATE).
//
// Bindings (keep in sync with `Family::Matmul` in src/gpu/kernels/source.rs and `MatmulParams`
// in src/gpu/linear/matmul.rs):
//   0 params: uniform MatmulParams
//   1 a: storage, read        A's elements, as vec4s (padded to whole vec4s)
//   2 b: storage, read        B's elements, as vec4s
//   3 bias: storage, read     [N] f32 (read only when has_bias)
//   4 c: storage, read_write  C's elements

struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    // Blocks of 64 columns: ceil(N / 64).
    tiles_n: u32,
    a_off: u32,
    a_sm: u32,
    a_sk: u32,
    b_off: u32,
    b_sn: u32,
    b_sk: u32,
    c_off: u32,
    c_sm: u32,
    alpha: f32,
    // 1: C += the product (C is read); 0: C = the product.
    accumulate: u32,
    // 1: bias(n) is added.
    has_bias: u32,
    // 1: A and B are contiguous along K (a_sk = b_sk = 1), K, a_off, a_sm, b_off and b_sn are
    // multiples of 4: read as vec4s along K.
    vec_k: u32,
}

const TILE: u32 = 8u;
const BLOCK: u32 = 64u;

@group(0) @binding(0) var<uniform> params: MatmulParams;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

fn a_at(i: u32) -> f32 {
    return a[i >> 2u][i & 3u];
}

fn b_at(i: u32) -> f32 {
    return b[i >> 2u][i & 3u];
}

// The TILE × TILE products of rows `am` of A and `bn` of B (element offsets of their k = 0),
// 4 k at a time as vec4s.
fn tile_vec4(am: array<u32, 8>, bn: array<u32, 8>) -> array<array<f32, 8>, 8> {
    var acc: array<array<f32, 8>, 8>;
    for (var k = 0u; k < params.k; k += 4u) {
        var av: array<vec4<f32>, 8>;
        var bv: array<vec4<f32>, 8>;
        for (var i = 0u; i < TILE; i++) {
            av[i] = a[(am[i] + k) >> 2u];
            bv[i] = b[(bn[i] + k) >> 2u];
        }
        for (var i = 0u; i < TILE; i++) {
            for (var j = 0u; j < TILE; j++) {
                // In increasing k, as the scalar loop sums.
                var s = acc[i][j];
                s = fma(av[i].x, bv[j].x, s);
                s = fma(av[i].y, bv[j].y, s);
                s = fma(av[i].z, bv[j].z, s);
                acc[i][j] = fma(av[i].w, bv[j].w, s);
            }
        }
    }
    return acc;
}

// As tile_vec4, one k at a time by the strides.
fn tile_scalar(am: array<u32, 8>, bn: array<u32, 8>) -> array<array<f32, 8>, 8> {
    var acc: array<array<f32, 8>, 8>;
    for (var k = 0u; k < params.k; k++) {
        var av: array<f32, 8>;
        var bv: array<f32, 8>;
        for (var i = 0u; i < TILE; i++) {
            av[i] = a_at(am[i] + k * params.a_sk);
            bv[i] = b_at(bn[i] + k * params.b_sk);
        }
        for (var i = 0u; i < TILE; i++) {
            for (var j = 0u; j < TILE; j++) {
                acc[i][j] = fma(av[i], bv[j], acc[i][j]);
            }
        }
    }
    return acc;
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
    let m0 = (t / params.tiles_n) * BLOCK + lid.y * TILE;
    let n0 = (t % params.tiles_n) * BLOCK + lid.x * TILE;
    var am: array<u32, 8>;
    var bn: array<u32, 8>;
    for (var i = 0u; i < TILE; i++) {
        am[i] = params.a_off + min(m0 + i, params.m - 1u) * params.a_sm;
        bn[i] = params.b_off + min(n0 + i, params.n - 1u) * params.b_sn;
    }
    var acc: array<array<f32, 8>, 8>;
    if params.vec_k == 1u {
        acc = tile_vec4(am, bn);
    } else {
        acc = tile_scalar(am, bn);
    }
    for (var i = 0u; i < TILE; i++) {
        let m = m0 + i;
        for (var j = 0u; j < TILE; j++) {
            let n = n0 + j;
            if m < params.m && n < params.n {
                let at = params.c_off + m * params.c_sm + n;
                var v = params.alpha * acc[i][j];
                if params.has_bias == 1u {
                    v += bias[n];
                }
                if params.accumulate == 1u {
                    v += c[at];
                }
                c[at] = v;
            }
        }
    }
}
