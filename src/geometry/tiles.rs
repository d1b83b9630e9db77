//! The blocks of shaders/matmul.wgsl and the row chunks of linear_cross_entropy, as pure
//! integer functions the kernel's index arithmetic mirrors.

/// Rows (and columns) of C one invocation of matmul.wgsl owns: `TILE` there.
pub(crate) const TILE: usize = 8;
/// Invocations along each side of a matmul.wgsl workgroup (`@workgroup_size(8, 8)`).
pub(crate) const SIDE: usize = 8;
/// Rows of C each lane of matmul_lanes.wgsl owns: `LANE_ROWS` there.
pub(crate) const LANE_ROWS: usize = 16;
/// Lanes of a matmul_lanes.wgsl workgroup (one subgroup), each owning 8 columns of C.
pub(crate) const LANES: usize = 8;

/// Which matmul kernel a product runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Design {
    /// matmul.wgsl: 8 × 8 invocations, each an 8 × 8 tile of C.
    Tiles,
    /// matmul_lanes.wgsl: one subgroup of 8 lanes, each LANE_ROWS rows × 8 columns of C.
    Lanes,
}

impl Design {
    /// Rows and columns of C one workgroup owns.
    pub fn block(self) -> (usize, usize) {
        match self {
            Design::Tiles => (TILE * SIDE, TILE * SIDE),
            Design::Lanes => (LANE_ROWS, 8 * LANES),
        }
    }

    /// k a loop trip consumes (the kernel's step along K).
    pub fn k_step(self) -> usize {
        match self {
            Design::Tiles => 4,
            Design::Lanes => 8,
        }
    }
}

/// The blocks of an `[m, n]` product: workgroup `t` owns block `(t / tiles_n, t % tiles_n)`,
/// or `(t % tiles_m, t / tiles_m)` when `n_major` (`block_of` in the kernels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Blocks {
    pub m: usize,
    pub n: usize,
    pub design: Design,
    pub n_major: bool,
}

impl Blocks {
    /// Blocks along N (`MatmulParams::tiles_n`).
    pub fn tiles_n(&self) -> usize {
        self.n.div_ceil(self.design.block().1)
    }

    /// Blocks along M.
    pub fn tiles_m(&self) -> usize {
        self.m.div_ceil(self.design.block().0)
    }

    /// The order that streams fewer bytes of `[m, k]` A and `[n, k]` B: `n_major` (B's blocks
    /// outermost: A is read tiles_n times, each B block once) when `tiles_n · m < tiles_m · n`.
    pub fn ordered(m: usize, n: usize, design: Design) -> Self {
        let b = Blocks {
            m,
            n,
            design,
            n_major: false,
        };
        Blocks {
            n_major: b.tiles_n() * m < b.tiles_m() * n,
            ..b
        }
    }

    /// The block (along M, along N) workgroup `t` owns, as the kernels' `block_of`.
    #[cfg(test)]
    pub fn block_of(&self, t: usize) -> (usize, usize) {
        match self.n_major {
            true => (t % self.tiles_m(), t / self.tiles_m()),
            false => (t / self.tiles_n(), t % self.tiles_n()),
        }
    }

    /// Workgroups of one dispatch: one per block.
    pub fn workgroups(&self) -> u64 {
        (self.tiles_m() * self.tiles_n()) as u64
    }

    /// The elements `(m, n)` of C that invocation `(lx, ly)` of workgroup `t` writes (for
    /// Lanes, lane `lx`, `ly` = 0), as the kernels compute them: those inside C of the
    /// invocation's rows `m0 + i` and columns `n0 + j`.
    #[cfg(test)]
    pub fn owned(&self, t: usize, lx: usize, ly: usize) -> Vec<(usize, usize)> {
        let (bm, bn) = self.design.block();
        if t >= self.tiles_m() * self.tiles_n() {
            return vec![];
        }
        let (bi, bj) = self.block_of(t);
        let ((m0, n0), (rows, cols)) = match self.design {
            Design::Tiles => ((bi * bm + ly * TILE, bj * bn + lx * TILE), (TILE, TILE)),
            Design::Lanes => ((bi * bm, bj * bn + 8 * lx), (LANE_ROWS, 8)),
        };
        let mut out = vec![];
        for i in 0..rows {
            for j in 0..cols {
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
        fn every_element_of_c_is_written_once(
            m in 1usize..200,
            n in 1usize..200,
            extra in 0usize..3,
            lanes in any::<bool>(),
            n_major in any::<bool>(),
        ) {
            let design = if lanes { Design::Lanes } else { Design::Tiles };
            let b = Blocks { m, n, design, n_major };
            let (sides_x, sides_y) = if lanes { (LANES, 1) } else { (SIDE, SIDE) };
            let mut seen = vec![0u8; m * n];
            for t in 0..b.workgroups() as usize + extra {
                for ly in 0..sides_y {
                    for lx in 0..sides_x {
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
