//! Splitting a tensor into pieces the adapter can bind, and dispatch grids past 65,535.
//!
//! A chunk is a run of whole `outer` slices (`C · inner` elements each, `inner` rows each),
//! so every row lies inside one chunk and a kernel sees plain chunk-relative u32 indices.
//! Chunk sizes stay at or under `max_storage_buffer_binding_size`, which keeps every index
//! below 2^32 even when the tensor has more than 2^31 elements.

use super::rows::Split;
use crate::error::{Result, XentError};
use crate::layout::RowLayout;
use std::ops::Range;

/// A part of a tensor bound at once: a run of whole outer slices, or, where one slice is larger
/// than a binding, a run of the row segments ([`Split`]) of one slice (a *piece*; then
/// `outer_len` is 1). Every row element lies in exactly one chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Chunk {
    pub outer: usize,
    pub outer_len: usize,
    /// The chunk's segments of each row: `[seg_first, seg_first + seg_count)`.
    pub seg_first: u32,
    pub seg_count: u32,
}

impl Chunk {
    /// Whether the chunk holds only some segments of its rows (a slice past one binding).
    pub fn is_piece(&self, split: &Split) -> bool {
        self.seg_count != split.segments
    }

    /// The classes of each of its rows.
    pub fn classes(&self, l: &RowLayout, split: &Split) -> Range<usize> {
        let len = split.len as usize;
        let c0 = (self.seg_first as usize * len).min(l.classes);
        c0..((self.seg_first + self.seg_count) as usize * len).min(l.classes)
    }

    /// Flat element range of the logits.
    pub fn elems(&self, l: &RowLayout, split: &Split) -> Range<usize> {
        let per = l.classes * l.inner;
        if !self.is_piece(split) {
            return self.outer * per..(self.outer + self.outer_len) * per;
        }
        let c = self.classes(l, split);
        let base = self.outer * per;
        base + c.start * l.inner..base + c.end * l.inner
    }

    /// Row range.
    pub fn rows(&self, l: &RowLayout) -> Range<usize> {
        self.outer * l.inner..(self.outer + self.outer_len) * l.inner
    }

    /// The chunk's own `[outer, C, inner]` view, as its kernels see it.
    pub fn layout(&self, l: &RowLayout, split: &Split) -> RowLayout {
        RowLayout {
            outer: self.outer_len,
            classes: self.classes(l, split).len(),
            inner: l.inner,
        }
    }
}

/// Chunks covering `layout` split as `split`, each at most `max_binding_bytes` of f32
/// values: whole outer slices where one fits, else pieces of whole segments (the split keeps a
/// segment within a binding: [`crate::geometry::rows::split`]).
pub(crate) fn plan(
    layout: &RowLayout,
    split: &Split,
    max_binding_bytes: u64,
) -> Result<Vec<Chunk>> {
    if layout.rows() == 0 {
        return Ok(vec![]);
    }
    let max_elems = max_binding_elems(max_binding_bytes);
    let unit = (layout.classes * layout.inner).max(layout.inner).max(1);
    let per_chunk = max_elems / unit;
    if per_chunk > 0 {
        return Ok((0..layout.outer)
            .step_by(per_chunk)
            .map(|outer| Chunk {
                outer,
                outer_len: per_chunk.min(layout.outer - outer),
                seg_first: 0,
                seg_count: split.segments,
            })
            .collect());
    }
    let segment = split.len as usize * layout.inner;
    let per_piece = (max_elems / segment.max(1)) as u32;
    if per_piece == 0 {
        return Err(XentError::Unsupported(format!(
            "one segment of the class axis spans {segment} elements ({} classes × stride {}), \
             more than the adapter can bind at once ({max_binding_bytes} bytes)",
            split.len, layout.inner
        )));
    }
    Ok((0..layout.outer)
        .flat_map(|outer| {
            (0..split.segments)
                .step_by(per_piece as usize)
                .map(move |first| Chunk {
                    outer,
                    outer_len: 1,
                    seg_first: first,
                    seg_count: per_piece.min(split.segments - first),
                })
        })
        .collect())
}

/// As [`plan`], for a vocabulary shard: each row also has partials (at most 32 bytes a
/// segment), bound whole for each chunk, so where a row has fewer than 8 classes a segment
/// they cap the chunk's rows.
pub(crate) fn shard_plan(
    layout: &RowLayout,
    split: &Split,
    max_binding_bytes: u64,
) -> Result<Vec<Chunk>> {
    let row = (layout.classes as u64 * 4).max(4);
    let stats_rows = (max_binding_bytes / (32 * split.segments.max(1) as u64)).max(1);
    plan(
        layout,
        split,
        max_binding_bytes.min(stats_rows.saturating_mul(row)),
    )
}

/// f32 values one binding of `max_binding_bytes` holds, within u32 indices.
pub(crate) fn max_binding_elems(max_binding_bytes: u64) -> usize {
    (max_binding_bytes / 4).min(u32::MAX as u64) as usize
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
        let whole = Split::whole(&l);
        let chunks = plan(&l, &whole, 4 * 21 * 4).unwrap();
        assert_eq!(chunks.len(), 3);
        let rows: Vec<usize> = chunks.iter().flat_map(|c| c.rows(&l)).collect();
        assert_eq!(rows, (0..30).collect::<Vec<_>>());
        assert!(chunks
            .iter()
            .all(|c| c.elems(&l, &whole).len() * 4 <= 4 * 21 * 4));
        // A slice past one binding: pieces of whole segments, in element order.
        let split = Split {
            segments: 2,
            len: 4,
        };
        let pieces = plan(&l, &split, 20 * 4).unwrap();
        assert_eq!(pieces.len(), 20);
        let elems: Vec<usize> = pieces.iter().flat_map(|c| c.elems(&l, &split)).collect();
        assert_eq!(elems, (0..210).collect::<Vec<_>>());
        assert!(plan(&l, &split, 8 * 4).is_err());
    }

    #[test]
    fn shard_chunks_keep_logits_and_partials_within_the_binding() {
        let binding = 4096;
        for classes in 1..40 {
            for outer in [1, 127, 128, 129, 1000] {
                let l = RowLayout {
                    outer,
                    classes,
                    inner: 1,
                };
                let whole = Split::whole(&l);
                let chunks = shard_plan(&l, &whole, binding).unwrap();
                let rows: Vec<usize> = chunks.iter().flat_map(|c| c.rows(&l)).collect();
                assert_eq!(rows, (0..outer).collect::<Vec<_>>());
                for c in &chunks {
                    assert!(c.elems(&l, &whole).len() * 4 <= binding as usize);
                    assert!(
                        c.rows(&l).len() * 32 <= binding as usize,
                        "{classes} {outer}"
                    );
                }
            }
        }
    }

    #[test]
    fn grid_goes_past_65535_rows() {
        assert_eq!(grid(70_000, 65_535).unwrap(), (65_535, 2));
        assert_eq!(grid(5, 65_535).unwrap(), (5, 1));
        assert!(grid(65_536 * 65_535, 65_535).is_err());
    }
}
