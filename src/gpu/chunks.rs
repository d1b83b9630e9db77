//! Splitting a tensor into pieces the adapter can bind, and dispatch grids past 65,535.
//!
//! A chunk is a run of whole `outer` slices (`C · inner` elements each, `inner` rows each),
//! so every row lies inside one chunk and a kernel sees plain chunk-relative u32 indices.
//! Chunk sizes stay at or under `max_storage_buffer_binding_size`, which keeps every index
//! below 2^32 even when the tensor has more than 2^31 elements.

use crate::error::{Result, XentError};
use crate::layout::RowLayout;
use std::ops::Range;

/// A run of outer slices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Chunk {
    pub outer: usize,
    pub outer_len: usize,
}

impl Chunk {
    /// Flat element range of the logits.
    pub fn elems(&self, l: &RowLayout) -> Range<usize> {
        let per = l.classes * l.inner;
        self.outer * per..(self.outer + self.outer_len) * per
    }

    /// Row range.
    pub fn rows(&self, l: &RowLayout) -> Range<usize> {
        self.outer * l.inner..(self.outer + self.outer_len) * l.inner
    }
}

/// Chunks covering `layout`, each at most `max_binding_bytes` of f32 logits and of rows.
pub(crate) fn plan(layout: &RowLayout, max_binding_bytes: u64) -> Result<Vec<Chunk>> {
    if layout.rows() == 0 {
        return Ok(vec![]);
    }
    let max_elems = (max_binding_bytes / 4).min(u32::MAX as u64) as usize;
    let unit = (layout.classes * layout.inner).max(layout.inner).max(1);
    let per_chunk = max_elems / unit;
    if per_chunk == 0 {
        return Err(XentError::Unsupported(format!(
            "one slice of the class axis spans {} elements ({} classes × stride {}), more than \
             the adapter can bind at once ({max_binding_bytes} bytes); move the class axis last",
            unit, layout.classes, layout.inner
        )));
    }
    Ok((0..layout.outer)
        .step_by(per_chunk)
        .map(|outer| Chunk {
            outer,
            outer_len: per_chunk.min(layout.outer - outer),
        })
        .collect())
}

/// A 2-D grid of at least `workgroups` workgroups within `max_per_dim` per dimension.
/// Kernels number workgroups `x + y · width` and skip those past the end.
pub(crate) fn grid(workgroups: u64, max_per_dim: u32) -> Result<(u32, u32)> {
    if workgroups == 0 {
        return Ok((0, 0));
    }
    let width = workgroups.min(max_per_dim as u64);
    let height = workgroups.div_ceil(width);
    if height > max_per_dim as u64 {
        return Err(XentError::Unsupported(format!(
            "{workgroups} workgroups do not fit a {max_per_dim}×{max_per_dim} dispatch"
        )));
    }
    Ok((width as u32, height as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_every_row_once_within_the_binding() {
        let l = RowLayout {
            outer: 10,
            classes: 7,
            inner: 3,
        };
        let chunks = plan(&l, 4 * 21 * 4).unwrap();
        assert_eq!(chunks.len(), 3);
        let rows: Vec<usize> = chunks.iter().flat_map(|c| c.rows(&l)).collect();
        assert_eq!(rows, (0..30).collect::<Vec<_>>());
        assert!(chunks.iter().all(|c| c.elems(&l).len() * 4 <= 4 * 21 * 4));
        assert!(plan(&l, 20 * 4).is_err());
    }

    #[test]
    fn grid_goes_past_65535_rows() {
        assert_eq!(grid(70_000, 65_535).unwrap(), (65_535, 2));
        assert_eq!(grid(5, 65_535).unwrap(), (5, 1));
        assert!(grid(65_536 * 65_535, 65_535).is_err());
    }
}
