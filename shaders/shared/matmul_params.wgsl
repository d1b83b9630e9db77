// The uniform of both matrix-product shaders (matmul.wgsl and matmul_lanes.wgsl), declared
// once; `MatmulParams` in src/gpu/ops/linear/matmul.rs is its Rust side, checked field by field
// by the naga test of src/gpu/kernels/params.rs.

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
    // How A and B are read: LAYOUT_* below, chosen in src/gpu/ops/linear/matmul.rs.
    a_layout: u32,
    b_layout: u32,
    // Where bias(0) lies in `bias`.
    bias_off: u32,
    // 1: workgroup t is block (t % tiles_m, t / tiles_m), the blocks along M innermost, so that
    // one block of B stays in cache while A passes (B the larger); 0: (t / tiles_n, t % tiles_n).
    n_major: u32,
    _pad2: u32,
}
