//! How a matrix product whose operands are larger than one binding is cut: into pieces over
//! (rows of C, columns of C, K) whose every operand fits a window of one binding. Pure integer
//! functions; the property tests check that the pieces cover the product exactly once and
//! that each window holds everything its piece reads.

use std::ops::Range;

/// A strided view: element `(i, k)` is at `offset + i · major + k · step`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Strides {
    pub offset: usize,
    pub major: usize,
    pub step: usize,
}

impl Strides {
    /// The elements rows `rows` and k `ks` reach: `first..last + 1` (empty for no element).
    pub fn reach(&self, rows: &Range<usize>, ks: &Range<usize>) -> Range<usize> {
        if rows.is_empty() || ks.is_empty() {
            return self.offset..self.offset;
        }
        let first = self.offset + rows.start * self.major + ks.start * self.step;
        let last = self.offset + (rows.end - 1) * self.major + (ks.end - 1) * self.step;
        first..last + 1
    }
}

/// Elements a kernel may read past the last one it needs: a whole group of 8 (matmul_lanes
/// reads 8 floats a load, matmul 4).
pub(crate) const READ_PAST: usize = 8;

/// The window of a buffer of `len` elements that a binding of `reach` takes: its start
/// rounded down to `align` elements (the device's storage offset alignment, a multiple of 8),
/// its end rounded up to a whole group of READ_PAST and cut at the buffer's end.
pub(crate) fn window(reach: &Range<usize>, align: usize, len: usize) -> Range<usize> {
    let start = reach.start / align * align;
    let end = (reach.end.max(start + 1).div_ceil(READ_PAST) * READ_PAST).min(len);
    start..end.max(start)
}

/// One piece of a product: C's rows `m`, columns `n`, summed over `k`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Piece {
    pub m: Range<usize>,
    pub n: Range<usize>,
    pub k: Range<usize>,
}

/// A product's shape and what bounds its pieces.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cut {
    pub dims: [usize; 3],
    pub a: Strides,
    pub b: Strides,
    /// C's row stride.
    pub c_major: usize,
    /// Most k one piece sums (the loop-trip limit times the kernels' smallest k step).
    pub max_k: usize,
    /// Most elements one window may hold.
    pub max_elems: usize,
    /// The window alignment in elements.
    pub align: usize,
}

impl Cut {
    /// The largest window of each binding for pieces of `ms` rows, `ns` columns, `kc` k:
    /// (A, B, C, bias), with the alignment and read-past slack included.
    fn windows(&self, ms: usize, ns: usize, kc: usize) -> [usize; 4] {
        let span = |s: &Strides, rows: usize| {
            let len = s.reach(&(0..rows), &(0..kc)).len();
            len + self.align + READ_PAST
        };
        let c = Strides {
            offset: 0,
            major: self.c_major,
            step: 1,
        };
        [
            span(&self.a, ms),
            span(&self.b, ns),
            c.reach(&(0..ms), &(0..ns)).len() + self.align + READ_PAST,
            ns + self.align + READ_PAST,
        ]
    }

    /// The pieces, in order (k innermost, so that each C element's k pieces run in
    /// increasing k): as few as keep every window within `max_elems`, or None when even a
    /// single element's windows do not fit.
    pub fn pieces(&self) -> Option<Vec<Piece>> {
        let [m, n, k] = self.dims;
        let (mut ms, mut ns) = (m.max(1), n.max(1));
        let mut kc = k.min(self.max_k).max(1);
        loop {
            let [a, b, c, bias] = self.windows(ms, ns, kc);
            let max = self.max_elems;
            if a <= max && b <= max && c <= max && bias <= max {
                break;
            }
            // Shrink the side that contributes most to the window that does not fit.
            let parts = |s: &Strides, rows: usize| {
                (
                    rows.saturating_sub(1) * s.major,
                    kc.saturating_sub(1) * s.step,
                )
            };
            let (a_rows, a_k) = parts(&self.a, ms);
            let (b_rows, b_k) = parts(&self.b, ns);
            let before = (ms, ns, kc);
            if c > max {
                if ms.saturating_sub(1) * self.c_major >= ns {
                    ms = halve(ms);
                } else {
                    ns = halve(ns);
                }
            } else if a > max {
                if a_rows >= a_k {
                    ms = halve(ms);
                } else {
                    kc = halve(kc);
                }
            } else if b > max {
                if b_rows >= b_k {
                    ns = halve(ns);
                } else {
                    kc = halve(kc);
                }
            } else {
                ns = halve(ns);
            }
            if before == (ms, ns, kc) {
                return None;
            }
        }
        let split = |len: usize, size: usize| -> Vec<Range<usize>> {
            (0..len.div_ceil(size).max(1))
                .map(|i| i * size..((i + 1) * size).min(len))
                .collect()
        };
        let mut out = vec![];
        for mr in split(m, ms) {
            for nr in split(n, ns) {
                for kr in split(k, kc) {
                    out.push(Piece {
                        m: mr.clone(),
                        n: nr.clone(),
                        k: kr,
                    });
                }
            }
        }
        Some(out)
    }
}

/// Consecutive pieces of `0..len`, each at most `max` long (at least `unit`) and starting on
/// a multiple of `unit`: one binding each, whose offsets stay on the device's alignment.
pub(crate) fn aligned_pieces(len: usize, max: usize, unit: usize) -> Vec<Range<usize>> {
    let unit = unit.max(1);
    let piece = (max / unit).max(1) * unit;
    (0..len)
        .step_by(piece)
        .map(|start| start..(start + piece).min(len))
        .collect()
}

/// Half of `v` (at least 1), kept a multiple of 8 from 16 up so that pieces start where the
/// kernels' 8-wide reads stay aligned.
fn halve(v: usize) -> usize {
    match v / 2 {
        h if h >= 8 => h / 8 * 8,
        h => h.max(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn strides() -> impl Strategy<Value = Strides> {
        (0usize..300, 0usize..400, 0usize..400).prop_map(|(offset, major, step)| Strides {
            offset,
            major,
            step,
        })
    }

    proptest! {
        /// Every (m, n, k) of the product is in exactly one piece; the pieces of each C
        /// element come in increasing k; every window fits and holds what its piece reads.
        #[test]
        fn pieces_cover_the_product_once_within_their_windows(
            m in 1usize..60, n in 1usize..60, k in 0usize..60,
            a in strides(), b in strides(), c_major in 0usize..100,
            max_k in 1usize..40, max_elems in 160usize..20_000, align8 in 1usize..9,
        ) {
            let align = align8 * 8;
            let c_major = c_major.max(n);
            let cut = Cut { dims: [m, n, k], a, b, c_major, max_k, max_elems, align };
            let Some(pieces) = cut.pieces() else {
                // Only when not even a one-element piece fits.
                prop_assert!(cut.windows(1, 1, 1).iter().any(|&w| w > max_elems));
                return Ok(());
            };
            let mut seen = vec![0u8; m * n * k.max(1)];
            let mut last_k = vec![0usize; m * n];
            let big = usize::MAX / 4;
            for p in &pieces {
                prop_assert!(p.k.len() <= max_k.max(1));
                let c = Strides { offset: 0, major: c_major, step: 1 };
                for (s, rows, ks) in [(&a, &p.m, &p.k), (&b, &p.n, &p.k), (&c, &p.m, &p.n)] {
                    let reach = s.reach(rows, ks);
                    let w = window(&reach, align, big);
                    prop_assert!(w.start <= reach.start && reach.end <= w.end);
                    prop_assert!(w.start.is_multiple_of(align));
                    prop_assert!(w.len() <= max_elems);
                }
                for i in p.m.clone() {
                    for j in p.n.clone() {
                        prop_assert!(p.k.start >= last_k[i * n + j]);
                        last_k[i * n + j] = p.k.end;
                        for kk in p.k.clone() {
                            seen[(i * n + j) * k + kk] += 1;
                        }
                        if k == 0 {
                            seen[i * n + j] += 1;
                        }
                    }
                }
            }
            prop_assert!(seen.iter().all(|&s| s == 1));
        }

        /// Aligned pieces cover 0..len once, in order, each within max and starting aligned.
        #[test]
        fn aligned_pieces_cover_once(len in 0usize..5000, max in 1usize..700, unit in 1usize..100) {
            let mut next = 0;
            for p in aligned_pieces(len, max, unit) {
                prop_assert_eq!(p.start, next);
                prop_assert!(p.start.is_multiple_of(unit) && !p.is_empty());
                prop_assert!(p.len() <= max.max(unit));
                next = p.end;
            }
            prop_assert_eq!(next, len);
        }

        /// A window holds its reach, starts aligned and stays inside the buffer.
        #[test]
        fn a_window_holds_its_reach(start in 0usize..10_000, len in 0usize..5000, align8 in 1usize..9, extra in 0usize..20) {
            let align = align8 * 8;
            let reach = start..start + len;
            let buffer = reach.end + extra;
            let w = window(&reach, align, buffer);
            prop_assert!(w.start <= reach.start && reach.end <= w.end && w.end <= buffer);
            prop_assert_eq!(w.start % align, 0);
        }
    }
}
