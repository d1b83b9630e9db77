//! The blocks of shaders/matmul.wgsl and the row chunks of linear_cross_entropy, as pure
//! integer functions the kernel's index arithmetic mirrors.

/// Rows (and columns) of C one invocation owns: `TILE` in matmul.wgsl.
pub(crate) const TILE: usize = 8;
/// Invocations along each side of a workgroup (`@workgroup_size(8, 8)`).
pub(crate) const SIDE: usize = 8;
/// Rows and columns of C one workgroup owns: `BLOCK` in matmul.wgsl.
pub(crate) const BLOCK: usize = TILE * SIDE;

/// The blocks of an `[m, n]` product: workgroup `t` owns block `(t / tiles_n, t % tiles_n)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Blocks {
    pub m: usize,
    pub n: usize,
}

impl Blocks {
    /// Blocks along N (`MatmulParams::tiles_n`).
    pub fn tiles_n(&self) -> usize {
        self.n.div_ceil(BLOCK)
    }

    /// Workgroups of one dispatch: one per block.
    pub fn workgroups(&self) -> u64 {
        (self.m.div_ceil(BLOCK) * self.tiles_n()) as u64
    }

    /// The elements `(m, n)` of C that invocation `(lx, ly)` of workgroup `t` writes, as
    /// matmul.wgsl computes them: rows `m0 + i` and columns `n0 + j` for `i, j < TILE`, those
    /// inside C.
    #[cfg(test)]
    pub fn owned(&self, t: usize, lx: usize, ly: usize) -> Vec<(usize, usize)> {
        let tiles_m = self.m.div_ceil(BLOCK);
        if t >= tiles_m * self.tiles_n() {
            return vec![];
        }
        let m0 = (t / self.tiles_n()) * BLOCK + ly * TILE;
        let n0 = (t % self.tiles_n()) * BLOCK + lx * TILE;
        let mut out = vec![];
        for i in 0..TILE {
            for j in 0..TILE {
                if m0 + i < self.m && n0 + j < self.n {
                    out.push((m0 + i, n0 + j));
                }
            }
        }
        out
    }
}

/// The row ranges linear_cross_entropy processes one at a time: `chunk` rows each (the last
/// shorter), covering `0..rows` in order.
pub(crate) fn row_chunks(rows: usize, chunk: usize) -> Vec<std::ops::Range<usize>> {
    let chunk = chunk.max(1);
    (0..rows.div_ceil(chunk))
        .map(|i| i * chunk..((i + 1) * chunk).min(rows))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Every element of C is written by exactly one invocation, and a padded grid's
        /// extra workgroups write nothing.
        #[test]
        fn every_element_of_c_is_written_once(m in 1usize..200, n in 1usize..200, extra in 0usize..3) {
            let b = Blocks { m, n };
            let mut seen = vec![0u8; m * n];
            for t in 0..b.workgroups() as usize + extra {
                for ly in 0..SIDE {
                    for lx in 0..SIDE {
                        for (i, j) in b.owned(t, lx, ly) {
                            seen[i * n + j] += 1;
                        }
                    }
                }
            }
            prop_assert!(seen.iter().all(|&c| c == 1));
        }

        /// Row chunks cover every row once, in order, none longer than the chunk.
        #[test]
        fn row_chunks_cover_every_row_once(rows in 0usize..5000, chunk in 0usize..700) {
            let chunks = row_chunks(rows, chunk);
            let mut next = 0;
            for c in &chunks {
                prop_assert_eq!(c.start, next);
                prop_assert!(!c.is_empty() && c.len() <= chunk.max(1));
                next = c.end;
            }
            prop_assert_eq!(next, rows);
        }
    }
}
