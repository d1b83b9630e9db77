//! How many invocations work on one row (`lanes`), and the workgroups that makes.
//!
//! Long rows get the whole workgroup; short rows share one, so that 8192 rows of 8 classes
//! do not leave 63 of 64 invocations idle. Each lane gets at least a few loads of its own:
//! vec4s for contiguous rows, single values for strided ones.

use crate::layout::RowLayout;

/// Loads each lane should have at least, before a row gets more lanes.
const LOADS_PER_LANE: usize = 4;

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
        assert_eq!(lanes(&l(1000, 1), 64), 64);
        assert_eq!(lanes(&l(128, 1), 64), 8);
        assert_eq!(lanes(&l(3, 1), 64), 1);
        assert_eq!(lanes(&l(3, 7), 64), 1);
        assert_eq!(lanes(&l(100, 7), 64), 32);
        assert_eq!(workgroups(1000, 1, 64), 16);
        assert_eq!(workgroups(1000, 64, 64), 1000);
    }
}
