// Rows held in workgroup memory, for the second pass of log_softmax / softmax and of the fused
// cross_entropy forward + backward. Rust prepends this file to those families and to the
// forward's (whose row statistics code is shared).
//
// With HOLD_ROWS (the *_held kernels, chosen by the host when a workgroup's rows fit) the
// first read of a contiguous row also keeps its vec4 body here, and the second pass reads it
// back from here instead of from memory: one read of the logits instead of two. A row's
// unaligned ends (at most 6 values) are read from memory again.
// Each lane takes back only the vec4s it kept itself (the same j = v0 + lane + k·lanes in
// both passes), so the passes need no barrier between them.
//
// Layout: the slot s = lid / lanes of a workgroup owns held[s·V, (s+1)·V) with
// V = ROW_VEC4S >= the row's vec4 count; vec4 j of the row sits at j - v0 + s·V.

// Set from Rust for the *_held pipelines only.
override HOLD_ROWS: bool = false;
// vec4s of workgroup memory: WG / lanes slots of ROW_VEC4S each (1 when not holding).
override HOLD: u32 = 1u;

var<workgroup> held: array<vec4<f32>, HOLD>;
// held index minus j for the current row (wrapping u32 arithmetic).
var<private> held_shift: u32;

// Where this invocation's row lives in `held`: call before the first read.
fn hold_begin(lid: u32, lanes: u32, row_vec4s: u32, v0: u32) {
    if HOLD_ROWS {
        held_shift = (lid / lanes) * row_vec4s - v0;
    }
}

fn hold4(j: u32, v: vec4<f32>) {
    if HOLD_ROWS {
        held[j + held_shift] = v;
    }
}

// Reads vec4 j of the logits and keeps it.
fn logits_held4(j: u32) -> vec4<f32> {
    let v = logits_4(j);
    hold4(j, v);
    return v;
}

// Keeps pair q (vec4s 2q, 2q + 1).
fn hold8(q: u32, w: Vec8) {
    hold4(2u * q, w.a);
    hold4(2u * q + 1u, w.b);
}

fn held4(j: u32) -> vec4<f32> {
    return held[j + held_shift];
}

// The second read of vec4 j of a contiguous row: from here when rows are held, else from
// memory again. In place, it comes before the same invocation writes the vec4.
fn hold_read4(j: u32) -> vec4<f32> {
    if HOLD_ROWS {
        return held4(j);
    }
    return logits_4(j);
}

// The second read of pair q (vec4s 2q, 2q + 1), likewise.
fn hold_read8(q: u32) -> Vec8 {
    if HOLD_ROWS {
        return Vec8(held4(2u * q), held4(2u * q + 1u));
    }
    return logits_8(q);
}
