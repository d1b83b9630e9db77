// cross_entropy and nll_loss, forward: one loss, one weight and the softmax statistics per row.
//
// Inputs, shapes and bindings 0-4: see shared/loss_inputs.wgsl. losses, dens and stats have
// one entry per row, in the order of PyTorch's `none` output [N, d1..dk].
//
// Math (w = weight or 1; m_n = [y != ignore_index]; ε = label smoothing; x after softcap):
//   lse = M + log(S), M = max_c x_c, S = Σ_c exp(x_c - M); -log p_c = log(S) - (x_c - M),
//   which stays exact for huge logits where M + log(S) rounds back to M.
//   class targets: ℓ_n = (1-ε)·w[y]·(-log p_y)·m_n + (ε/C)·Σ_c w_c·(-log p_c)·m_n,
//                  den_n = w[y]·m_n
//   prob targets:  ℓ_n = Σ_c q_c·(-log p_c), q_c = w_c·(t_c·(1-ε) + ε/C), den_n = 1
//   z-loss adds z·lse² to every row that is not ignored.
//   The smoothing sums are Q = Σ q_c and A = Σ q_c·(x_c - r), r = x[row, 0], so
//   Σ_c q_c·(-log p_c) = Q·(log(S) + (M - r)) - A; subtracting r keeps A small when the
//   logits are large.
//   nll_loss reads the input as log-probabilities: ℓ_n = -w[y]·x[y]·m_n.
//   The reduction over rows (and the mean's denominator Σ den_n) is reduce.wgsl.
//
// Few, long rows (e.g. 64×262144) are split so that the adapter has enough workgroups:
// cross_entropy_partials reads each segment once, cross_entropy_merge (tiny) merges a row's
// segments. The traffic is the same 4 bytes per logit.
// Work and traffic: cross_entropy_rows gives each row `lanes` invocations (shared/lse.wgsl)
// and reads it once, in pairs of vec4s when it is contiguous (shared/lse.wgsl's Pairs: one
// load each where f32 is read 8 at a time): a pair costs one rescale exp(M_old - M) and
// eight exp(x - M), and the target logit is gathered by one invocation. 4 bytes read per
// logit (8 with probability targets); log_softmax is never materialised. nll_rows is one
// invocation per row and reads one value of it.
//
// A class target outside [0, C) that is not ignored makes its row NaN; it never reads out
// of bounds.
//
// Bindings 5-7 (keep in sync with `Family::Loss` in src/gpu/kernels/source.rs):
//   5 losses: storage, read_write  [rows]
//   6 dens: storage, read_write    [rows] the row's share of the mean's denominator
//   7 stats: storage, read_write   [rows * S] vec4 (M, S, Q, lse) at row * S, reused by
//                                  grad.wgsl; with split rows (S = seg_total), first the
//                                  partials, and a second plane of [rows * S] after them
//   8 error: storage, read_write   [4] u32: the first row whose class target is out of range
//                                  (0xffffffff: none) and its target's two words. Device
//                                  targets cannot be checked on the host; row_dens raises this
//                                  flag instead, with atomicMin, so "first" is deterministic.

// The logits are read through io/input_*.wgsl (logits_8, logits_4, logits_1).
@group(0) @binding(1) var<storage, read> logits: array<InputWord>;
@group(0) @binding(5) var<storage, read_write> losses: array<f32>;
@group(0) @binding(6) var<storage, read_write> dens: array<f32>;
@group(0) @binding(7) var<storage, read_write> stats: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read_write> error: array<atomic<u32>, 4>;

@compute @workgroup_size(WG)
fn cross_entropy_rows(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let slot = row_slot(wid, nwg, lid, params.lanes, params.rows);
    let base = row_base(slot.row);
    let rs = row_stats(slot, base, lid);
    if !slot.valid || slot.lane != 0u {
        return;
    }
    let l = row_loss(slot.row, rs, target_logit(slot.row, base));
    losses[slot.row] = l.loss;
    dens[slot.row] = l.den;
    stats[slot.row] = vec4<f32>(rs.st.m, rs.st.s, rs.qa.x, l.lse);
}

// Split rows, first pass: workgroup g works on segment g % S of row g / S, all WG
// invocations on it (lanes = WG), and writes the row's slot k for it (k = seg_first + g % S):
// the segment's partial (M, S, Q, A) at stats[row · seg_total + k], with A taken against the
// segment's own first logit r_k, and (r_k, x_t, 1 if the target is in the segment, 0) in the
// second plane, at rows · seg_total further. A segment needs nothing from another, so a row
// larger than one binding is read a few segments (one chunk) at a time.
@compute @workgroup_size(WG)
fn cross_entropy_partials(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = linear_workgroup(wid, nwg);
    let seg = segment_of(g, params.segments, params.segment_len, params.classes);
    let slot = RowSlot(seg.row, lid, seg.row < params.rows);
    let base = row_base(seg.row);
    let rs = row_stats_range(slot, base, seg.c0, seg.c1, lid);
    if slot.valid && lid == 0u {
        let k = seg.row * params.seg_total + params.seg_first + g % params.segments;
        stats[k] = vec4<f32>(rs.st.m, rs.st.s, rs.qa.x, rs.qa.y);
        // The target, when it falls in this segment.
        let t = row_target(seg.row) - i32(params.class_first);
        var found = vec2<f32>(0.0, 0.0);
        if t >= i32(seg.c0) && t < i32(seg.c1) {
            found = vec2<f32>(cap(logits_1(base + u32(t) * params.inner)), 1.0);
        }
        stats[params.rows * params.seg_total + k] = vec4<f32>(rs.r, found, 0.0);
    }
}

// Split rows, second pass: one invocation per row merges its seg_total partials in segment
// order (deterministic; Σ A_k + Q_k·(r_k - r_0) puts every A against the row's first logit),
// then writes the row's loss, den and final stats (M, S, Q, lse) over its first partial,
// stats[row · seg_total]. It reads no logits: the target's came with its segment's partial.
@compute @workgroup_size(WG)
fn cross_entropy_merge(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = linear_workgroup(wid, nwg) * WG + lid;
    if row >= params.rows {
        return;
    }
    let first = row * params.seg_total;
    let aux = params.rows * params.seg_total + first;
    let r0 = stats[aux].x;
    var st = lse_empty();
    var qa = vec2<f32>(0.0, 0.0);
    var x_target = 0.0;
    for (var k = 0u; k < params.seg_total; k++) {
        let p = stats[first + k];
        let e = stats[aux + k];
        st = lse_merge(st, Lse(p.x, p.y));
        qa += vec2<f32>(p.z, p.w + p.z * (e.x - r0));
        if e.z != 0.0 {
            x_target = e.y;
        }
    }
    let l = row_loss(row, RowStats(st, qa, r0), x_target);
    losses[row] = l.loss;
    dens[row] = l.den;
    stats[first] = vec4<f32>(st.m, st.s, qa.x, l.lse);
}

// The mean's denominator share of each row, from the targets alone (one invocation per
// row): the fused backward needs D = Σ den before it reads any logit.
@compute @workgroup_size(WG)
fn row_dens(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = linear_workgroup(wid, nwg) * WG + lid;
    if row < params.rows {
        dens[row] = row_den(row);
        if !prob_targets() && row_target(row) == -2 {
            atomicMin(&error[0], params.row_base + row);
        }
    }
}

// After row_dens: copies the first bad row's target words next to its position.
@compute @workgroup_size(1)
fn report_error() {
    let first = atomicLoad(&error[0]);
    if first != 0xffffffffu && first >= params.row_base && first - params.row_base < params.rows {
        let row = first - params.row_base;
        let w = params.target_words;
        let low = bitcast<u32>(targets[row * w]);
        var high = select(0u, 0xffffffffu, i32(low) < 0 && !unsigned_targets());
        if w == 2u {
            high = bitcast<u32>(targets[row * 2u + 1u]);
        }
        atomicStore(&error[1], low);
        atomicStore(&error[2], high);
    }
}

@compute @workgroup_size(WG)
fn nll_rows(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = linear_workgroup(wid, nwg) * WG + lid;
    if row >= params.rows {
        return;
    }
    // A row larger than one binding is bound a few classes at a time (src/geometry/chunks.rs): the
    // chunk holding the target writes the row, and the first chunk writes a row without one.
    let t = row_target(row);
    let local = t - i32(params.class_first);
    let here = local >= 0 && local < i32(params.classes);
    if !here && (t >= 0 || params.class_first != 0u) {
        return;
    }
    var loss = 0.0;
    var den = 0.0;
    if t == -2 {
        loss = quiet_nan();
        den = quiet_nan();
    } else if t >= 0 {
        let w = target_weight(u32(t));
        loss = -w * logits_1(row_base(row) + u32(local) * params.inner);
        den = w;
    }
    losses[row] = loss;
    dens[row] = den;
}
