//! How many invocations work on one row (`lanes`), and the workgroups that makes.
//!
//! Long rows get the whole workgroup; short rows share one, so that 8192 rows of 8 classes
//! do not leave 63 of 64 invocations idle. Each lane gets at least a few loads of its own:
//! vec4s for contiguous rows, single values for strided ones.

use crate::layout::RowLayout;

/// Loads each lane should have at least, before a row gets more lanes. Measured on lavapipe
/// (65536×256 cross_entropy, end-to-end median): 4 loads gave 194 ms, 16 gave 42, 32 gave 28; long
/// rows (C = 32000) get the whole workgroup either way.
const LOADS_PER_LANE: usize = 32;

/// Invocations per row: a power of two from 1 to `workgroup_size`.
pub(crate) fn lanes(layout: &RowLayout, workgroup_size: u32) -> u32 {
    let loads = if layout.inner == 1 {
        layout.classes.div_ceil(4)
    } else {
        layout.classes
    };
    let wanted = loads.div_ceil(LOADS_PER_LANE).max(1).next_power_of_two();
    wanted.min(workgroup_size as usize) as u32
}

/// Lanes per row when rows are held in workgroup memory between two passes
/// (shared/hold.wgsl): each of the workgroup's WG / lanes rows takes C / 4 + 1 of the
/// `hold_vec4s` vec4s there, so long rows get more lanes (fewer rows per workgroup) than
/// [`lanes`] gives them. `None` for strided rows, and for rows that do not fit.
pub(crate) fn held_lanes(
    layout: &RowLayout,
    workgroup_size: u32,
    hold_vec4s: usize,
) -> Option<u32> {
    if layout.inner != 1 {
        return None;
    }
    let fit = hold_vec4s / (layout.classes / 4 + 1);
    if fit == 0 {
        return None;
    }
    let rows_per_group = (workgroup_size / lanes(layout, workgroup_size)) as usize;
    // The largest power of two of rows that fits (fit >= 1).
    let held = rows_per_group.min(1 << fit.ilog2());
    Some(workgroup_size / held as u32)
}

/// How a row is split for few, long rows: `segments` pieces of `len` classes (a multiple
/// of 4, so that every piece but the last starts where the previous ended on the same vec4
/// phase). `(1, C)` means no split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Split {
    pub segments: u32,
    pub len: u32,
}

/// Splits contiguous rows when there are fewer rows than `min_workgroups`, into as many
/// pieces as bring the workgroups up to it, each at least 16 loads per invocation long.
pub(crate) fn split(layout: &RowLayout, workgroup_size: u32, min_workgroups: u32) -> Split {
    let none = Split {
        segments: 1,
        len: layout.classes as u32,
    };
    let rows = layout.rows();
    if layout.inner != 1 || rows == 0 || rows >= min_workgroups as usize {
        return none;
    }
    let shortest = 16 * 4 * workgroup_size as usize;
    let most = layout.classes / shortest;
    let wanted = (min_workgroups as usize).div_ceil(rows).min(most);
    if wanted <= 1 {
        return none;
    }
    let len = layout.classes.div_ceil(wanted).div_ceil(4) * 4;
    Split {
        segments: layout.classes.div_ceil(len) as u32,
        len: len as u32,
    }
}

/// Workgroups that cover `rows` rows at `lanes` invocations each.
pub(crate) fn workgroups(rows: usize, lanes: u32, workgroup_size: u32) -> u64 {
    let per_workgroup = (workgroup_size / lanes).max(1) as u64;
    (rows as u64).div_ceil(per_workgroup)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(classes: usize, inner: usize) -> RowLayout {
        RowLayout {
            outer: 1,
            classes,
            inner,
        }
    }

    #[test]
    fn long_rows_take_the_workgroup_and_short_ones_share_it() {
        assert_eq!(lanes(&l(32000, 1), 64), 64);
        assert_eq!(lanes(&l(4096, 1), 256), 32);
        assert_eq!(lanes(&l(1000, 1), 64), 8);
        assert_eq!(lanes(&l(128, 1), 64), 1);
        assert_eq!(lanes(&l(3, 1), 64), 1);
        assert_eq!(lanes(&l(3, 7), 64), 1);
        assert_eq!(lanes(&l(100, 7), 64), 4);
        assert_eq!(workgroups(1000, 1, 64), 16);
        assert_eq!(workgroups(1000, 64, 64), 1000);
    }

    #[test]
    fn held_rows_fit_the_workgroup_memory() {
        // 4096 classes: 1025 vec4s a row; 2816 hold two rows, so 128 lanes of 256 each.
        assert_eq!(held_lanes(&l(4096, 1), 256, 2816), Some(128));
        assert_eq!(held_lanes(&l(4096, 1), 256, 1025), Some(256));
        assert_eq!(held_lanes(&l(4096, 1), 256, 1024), None);
        assert_eq!(held_lanes(&l(32000, 1), 16, 1984), None);
        // Short rows keep their own lanes when every row of the workgroup fits.
        assert_eq!(held_lanes(&l(128, 1), 64, 4096), Some(1));
        assert_eq!(held_lanes(&l(128, 1), 64, 33 * 8), Some(8));
        assert_eq!(held_lanes(&l(100, 7), 64, 1 << 20), None);
    }

    #[test]
    fn few_long_rows_are_split_into_aligned_segments() {
        let l = RowLayout {
            outer: 64,
            classes: 262144,
            inner: 1,
        };
        let s = split(&l, 256, 1024);
        assert_eq!((s.segments, s.len), (16, 16384));
        assert_eq!(
            split(&l, 256, 64),
            Split {
                segments: 1,
                len: 262144
            }
        );
        let odd = RowLayout {
            outer: 3,
            classes: 10001,
            inner: 1,
        };
        let s = split(&odd, 16, 64);
        assert!(s.segments > 1 && s.len.is_multiple_of(4) && (s.segments - 1) * s.len < 10001);
        assert!(s.segments * s.len >= 10001);
        let strided = RowLayout {
            outer: 2,
            classes: 100000,
            inner: 3,
        };
        assert_eq!(split(&strided, 16, 4096).segments, 1);
    }
}
