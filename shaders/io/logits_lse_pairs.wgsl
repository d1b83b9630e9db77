// The online (M, S) of the pairs of vec4s of logits a lane walks in the common case (no
// smoothing, softcap or probabilities): q0 + lane, then every `lanes`-th below q1, two pairs a
// trip with one rescale (shared/lse.wgsl says why), then the one left over. With HOLD_ROWS each
// pair is also kept (shared/hold.wgsl). Composed into the families that read rows
// (src/gpu/kernels/source.rs).
fn logits_lse_pairs(st0: Lse, first: u32, q1: u32, lanes: u32) -> Lse {
    var st = st0;
    var q = first;
    for (; q + lanes < q1; q += 2u * lanes) {
        let w = logits_8(q);
        let v = logits_8(q + lanes);
        hold8(q, w);
        hold8(q + lanes, v);
        st = lse_push16(st, w, v);
    }
    if q < q1 {
        let w = logits_8(q);
        hold8(q, w);
        st = lse_push8(st, w);
    }
    return st;
}
