// Deterministic reduction of per-row (loss, den) pairs to the scalar loss.
//
// Shapes: in_sum and in_den hold n values; reduce_block writes one partial pair per
// workgroup at out_sum[out_base + g], out_den[out_base + g]. The host repeats it until one
// pair is left, then finalize writes, at k = out_base (0 for a loss),
//   out_sum[k] = Σ loss / Σ den  (mean; NaN for 0/0: every target ignored, zero total
//                                 weight, or no rows, as in PyTorch; with label smoothing
//                                 NaN wherever Σ den = 0: PyTorch divides the nll term, 0
//                                 then, by D apart from the smoothing term)
//              = Σ loss          (sum)
//   out_den[k] = the mean's denominator D (1 for sum), which the gradient divides by.
// reduce_single does all of it in one dispatch for small n.
// Each workgroup sums BLOCK = WG * ITEMS consecutive values: each invocation adds ITEMS of
// them in index order, then the workgroup adds the WG sums in a fixed tree. The order
// depends only on n, so the result is bitwise reproducible. No atomics.
//
// Bindings (keep in sync with `Family::Reduce` in src/gpu/kernels/source.rs and `ReduceParams` in
// src/gpu/ops/reduce.rs):
//   0 params: uniform ReduceParams
//   1 in_sum: storage, read         [n]
//   2 in_den: storage, read         [n]
//   3 out_sum: storage, read_write  [>= out_base + ceil(n / BLOCK)] (finalize: out_base + 1)
//   4 out_den: storage, read_write  same as out_sum

struct ReduceParams {
    n: u32,
    out_base: u32,
    // 1: mean, 2: sum, 3: mean of a label-smoothed loss (finalize and reduce_single)
    mode: u32,
    // reduce_single: 1 when the mean's denominator is in_den[0] rather than Σ in_den.
    den_given: u32,
}

// `REDUCE_ITEMS` in src/gpu/kernels/source.rs sizes the dispatch; a naga test checks both agree.
const ITEMS: u32 = 4u;
const MODE_MEAN: u32 = 1u;
const MODE_SMOOTHED_MEAN: u32 = 3u;

@group(0) @binding(0) var<uniform> params: ReduceParams;
@group(0) @binding(1) var<storage, read> in_sum: array<f32>;
@group(0) @binding(2) var<storage, read> in_den: array<f32>;
@group(0) @binding(3) var<storage, read_write> out_sum: array<f32>;
@group(0) @binding(4) var<storage, read_write> out_den: array<f32>;

@compute @workgroup_size(WG)
fn reduce_block(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = linear_workgroup(wid, nwg);
    let start = g * WG * ITEMS;
    // The grid is rounded up to a rectangle; the whole workgroup leaves together.
    if start >= params.n {
        return;
    }
    var acc = vec2<f32>(0.0, 0.0);
    for (var k = 0u; k < ITEMS; k++) {
        let i = start + k * WG + lid;
        if i < params.n {
            acc += vec2<f32>(in_sum[i], in_den[i]);
        }
    }
    let total = workgroup_sum2(acc, lid, WG);
    if lid == 0u {
        out_sum[params.out_base + g] = total.x;
        out_den[params.out_base + g] = total.y;
    }
}

@compute @workgroup_size(1)
fn finalize() {
    finish(in_sum[0], in_den[0]);
}

// out_sum[k], out_den[k] from the sums s and d, by the reduction's rule (header).
fn finish(s: f32, d: f32) {
    let k = params.out_base;
    if params.mode == MODE_MEAN || params.mode == MODE_SMOOTHED_MEAN {
        if d == 0.0 && (s == 0.0 || params.mode == MODE_SMOOTHED_MEAN) {
            out_sum[k] = quiet_nan();
        } else {
            out_sum[k] = s / d;
        }
        out_den[k] = d;
    } else {
        out_sum[k] = s;
        out_den[k] = 1.0;
    }
}

// Small batches (n <= SINGLE_PASS_TRIPS * WG, src/gpu/ops/reduce.rs): one dispatch instead of
// blocks and finalize. Lane l adds values l, l + WG, ... in index order, then the workgroup
// adds the WG sums in the same fixed tree; zeros past the batch add nothing. With DEN_GIVEN
// the denominator is in_den[0], summed before (the fused backward's D), not Σ in_den.
@compute @workgroup_size(WG)
fn reduce_single(@builtin(local_invocation_index) lid: u32) {
    let given = params.den_given != 0u;
    var acc = vec2<f32>(0.0, 0.0);
    for (var i = lid; i < params.n; i += WG) {
        acc += vec2<f32>(in_sum[i], select(in_den[i], 0.0, given));
    }
    let total = workgroup_sum2(acc, lid, WG);
    if lid == 0u {
        finish(total.x, select(total.y, in_den[0], given));
    }
}
