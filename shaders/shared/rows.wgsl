// How the families that read rows (softmax, loss, grad) walk them: row slots and lanes, split
// rows' segments, a row's vec4 span and its pairs. Each family's `params` has `classes` and
// `inner` (the [outer, C, inner] view of src/layout.rs). The geometry on the host is
// src/geometry/rows.rs.

// Flat index of class 0 of row r: rows are x[o, 0..C, i] with r = o·inner + i.
fn row_base(row: u32) -> u32 {
    return (row / params.inner) * params.classes * params.inner + row % params.inner;
}

// Rows and lanes: a workgroup of WG invocations works on WG / lanes rows with `lanes`
// invocations each. `lanes` is a power of two chosen per dispatch from C (src/geometry/rows.rs):
// WG for long rows, down to 1 for tiny ones, so that small C does not leave most of a
// workgroup idle. An invocation past the last row stays in the workgroup (it must reach
// every barrier) but touches no memory.
struct RowSlot {
    row: u32,
    lane: u32,
    valid: bool,
}

fn row_slot(wid: vec3<u32>, nwg: vec3<u32>, lid: u32, lanes: u32, rows: u32) -> RowSlot {
    let row = linear_workgroup(wid, nwg) * (WG / lanes) + lid / lanes;
    return RowSlot(row, lid % lanes, row < rows);
}

// Split rows (src/geometry/rows.rs's Split): each row is `segments` pieces of `len` classes, and
// workgroup g works on piece g % segments of row g / segments, classes [c0, c1), all its WG
// invocations on it. (g % segments) · len < C, so nothing overflows.
struct Segment {
    row: u32,
    c0: u32,
    c1: u32,
}

fn segment_of(g: u32, segments: u32, len: u32, classes: u32) -> Segment {
    let c0 = min((g % segments) * len, classes);
    return Segment(g / segments, c0, min(c0 + len, classes));
}

// A contiguous row [base, base + n) read as whole vec4s [v0, v1) plus `ends` scalars (the
// unaligned head, then the tail): vec4 loads cut the loop trips four-fold, which is what
// CPU adapters (lavapipe, llvmpipe) and GPUs both reward.
struct Span {
    v0: u32,
    v1: u32,
    ends: u32,
}

fn row_span(base: u32, n: u32) -> Span {
    let end = base + n;
    let v0 = (base + 3u) / 4u;
    let v1 = end / 4u;
    if v1 <= v0 {
        return Span(0u, 0u, n);
    }
    return Span(v0, v1, (4u * v0 - base) + (end - 4u * v1));
}

// The flat index of the k-th scalar end of a span (k < ends).
fn span_scalar(sp: Span, base: u32, k: u32) -> u32 {
    if sp.v1 == 0u {
        return base + k;
    }
    let head = 4u * sp.v0 - base;
    if k < head {
        return base + k;
    }
    return 4u * sp.v1 + (k - head);
}

// A span's vec4 body [v0, v1) as whole pairs [q0, q1) (vec4s 2q, 2q + 1) plus the odd vec4
// at each end: `lo` (v0, when v0 is odd) and `hi` (v1 - 1, when v1 is odd); a flag is 0 when
// that end is not there. Every pass over a row walks it the same way, so a lane meets the
// same vec4s each time (rows held in workgroup memory rely on it).
//
// The hot loops over pairs take two a trip, pairs q and q + lanes of the lane's own walk, both
// read before either is written (then the one left over, if any): lavapipe pays a lot per
// loop trip. The forward's two pairs share one rescale (lse_push16). The general cases (label
// smoothing, softcap, probabilities) keep one pair a trip, where two did not pay
// (docs/PERFORMANCE.md).
struct Pairs {
    q0: u32,
    q1: u32,
    lo: u32,
    hi: u32,
    has_lo: bool,
    has_hi: bool,
}

fn span_pairs(sp: Span) -> Pairs {
    let q0 = (sp.v0 + 1u) / 2u;
    let q1 = max(sp.v1 / 2u, q0);
    let has_lo = sp.v1 > sp.v0 && (sp.v0 & 1u) == 1u;
    let has_hi = sp.v1 > sp.v0 && (sp.v1 & 1u) == 1u;
    return Pairs(q0, q1, sp.v0, sp.v1 - 1u, has_lo, has_hi);
}

// Whether this lane takes the span's odd vec4 at its start, `lo` (lane 0), or at its end,
// `hi` (lane 1, or lane 0 alone). Every walk calls both, one line each, after its pairs.
fn takes_lo(pr: Pairs, lane: u32) -> bool {
    return pr.has_lo && lane == 0u;
}

fn takes_hi(pr: Pairs, lane: u32, lanes: u32) -> bool {
    return pr.has_hi && lane == 1u % lanes;
}

