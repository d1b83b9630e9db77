//! How many invocations work on one row (`lanes`), and the workgroups that makes.
//!
//! Long rows get the whole workgroup; short rows share one, so that 8192 rows of 8 classes
//! do not leave 63 of 64 invocations idle. Each lane gets at least a few loads of its own:
//! vec4s for contiguous rows, single values for strided ones.

use crate::layout::RowLayout;

/// Loads each lane should have at least, before a row gets more lanes (measured on lavapipe:
/// docs/PERFORMANCE.md); long rows get the whole workgroup either way.
const LOADS_PER_LANE: usize = 32;

/// Invocations per row: a power of two from 1 to `workgroup_size`, enough that no lane walks
/// more than [`lane_values`] of an unsplit row.
pub(crate) fn lanes(layout: &RowLayout, workgroup_size: u32, max_trips: u32) -> u32 {
    let loads = if layout.inner == 1 {
        layout.classes.div_ceil(4)
    } else {
        layout.classes
    };
    let wanted = loads
        .div_ceil(LOADS_PER_LANE)
        .max(layout.classes.div_ceil(lane_values(layout, max_trips)))
        .max(1)
        .next_power_of_two();
    wanted.min(workgroup_size as usize) as u32
}

/// Lanes per row when rows are held in workgroup memory between two passes
/// (shared/hold.wgsl): each of the workgroup's WG / lanes rows takes C / 4 + 1 of the
/// `hold_vec4s` vec4s there, so long rows get more lanes (fewer rows per workgroup) than
/// [`lanes`] gives them. `None` for strided rows, and for rows that do not fit.
pub(crate) fn held_lanes(layout: &RowLayout, t: &WalkTuning) -> Option<u32> {
    let (workgroup_size, hold_vec4s) = (t.workgroup_size, t.hold_vec4s);
    if layout.inner != 1 {
        return None;
    }
    let fit = hold_vec4s / (layout.classes / 4 + 1);
    if fit == 0 {
        return None;
    }
    let rows_per_group =
        (workgroup_size / lanes(layout, workgroup_size, t.max_loop_trips)) as usize;
    // The largest power of two of rows that fits (fit >= 1).
    let held = rows_per_group.min(1 << fit.ilog2());
    Some(workgroup_size / held as u32)
}

/// Loop trips one invocation takes at most in one dispatch, by default. Mesa's software
/// adapters (llvmpipe through GL, lavapipe through Vulkan: gallivm's
/// `LP_MAX_TGSI_LOOP_ITERATIONS`) stop *every* loop of an invocation once 65,535 trips have
/// been taken in total, and carry on silently: a long row's tail was left unwritten
/// (log_softmax at C = 4,194,304 lost its last 1,024 values). Rows are cut into segments so
/// that no lane comes near it, on every adapter: a quarter of it for the row walks leaves the
/// rest for the reductions, the scalar ends and the merge of a row's segments.
pub(crate) const MAX_LOOP_TRIPS: u32 = 16_384;

/// Values of a row one lane may walk in one segment within `max_trips` loop trips: every row
/// kernel walks a row at most twice (statistics, then output), 4 values a trip (vec4s; pairs
/// take 8) in contiguous rows and 1 in strided ones. A multiple of 4 (`max_trips` >= 8).
pub(crate) fn lane_values(layout: &RowLayout, max_trips: u32) -> usize {
    let per_trip = if layout.inner == 1 { 4 } else { 1 };
    ((max_trips as usize / 2) * per_trip / 4 * 4).max(4)
}

/// How a row is split: `segments` pieces of `len` classes (a multiple of 4, so that every
/// piece but the last starts where the previous ended on the same vec4 phase), one
/// workgroup each, all WG invocations on it. `(1, C)` means no split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Split {
    pub segments: u32,
    pub len: u32,
}

impl Split {
    /// No split: one piece of C classes.
    pub fn whole(layout: &RowLayout) -> Self {
        Self {
            segments: 1,
            len: layout.classes as u32,
        }
    }

    /// Classes `[c0, c1)` of segment `s`, as the kernels compute them (shared/lse.wgsl's
    /// `segment_of`).
    #[cfg(test)]
    pub fn classes(&self, s: u32, classes: usize) -> std::ops::Range<usize> {
        let c0 = (s as usize * self.len as usize).min(classes);
        c0..(c0 + self.len as usize).min(classes)
    }
}

/// Splits rows so that no lane walks more than [`lane_values`] of them (long rows on any
/// adapter) and no segment is larger than a binding, and contiguous rows further when there are fewer rows than `min_workgroups`,
/// into as many pieces as bring the workgroups up to it, each at least 16 loads per
/// invocation long.
pub(crate) fn split(layout: &RowLayout, t: &WalkTuning) -> Split {
    let (workgroup_size, min_workgroups, max_trips) =
        (t.workgroup_size, t.min_workgroups, t.max_loop_trips);
    let none = Split::whole(layout);
    let rows = layout.rows();
    if rows == 0 || layout.classes == 0 {
        return none;
    }
    let wg = workgroup_size as usize;
    // A segment also fits one binding, so that a row larger than a binding can be bound a few
    // segments at a time (src/geometry/chunks.rs).
    let fits = (t.max_binding_elems / layout.inner / 4 * 4).max(4);
    let longest = (lane_values(layout, max_trips) * wg).min(fits);
    let by_trips = layout.classes.div_ceil(longest);
    let by_threads = match layout.inner == 1 && rows < min_workgroups as usize {
        true => (min_workgroups as usize)
            .div_ceil(rows)
            .min(layout.classes / (16 * 4 * wg)),
        false => 1,
    };
    let wanted = by_trips.max(by_threads);
    if wanted <= 1 {
        return none;
    }
    // At most `longest` (a multiple of 4) since C / wanted is.
    let len = layout.classes.div_ceil(wanted).next_multiple_of(4);
    Split {
        segments: layout.classes.div_ceil(len) as u32,
        len: len as u32,
    }
}

/// The per-adapter choices the row geometry depends on (`Context::tuning`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WalkTuning {
    /// Invocations per workgroup, a power of two.
    pub workgroup_size: u32,
    /// Calls with fewer contiguous rows than this split them across workgroups.
    pub min_workgroups: u32,
    /// Loop trips one invocation may take in one dispatch ([`MAX_LOOP_TRIPS`]).
    pub max_loop_trips: u32,
    /// vec4s of workgroup memory a row may be held in (0: rows are not held).
    pub hold_vec4s: usize,
    /// f32 values one storage binding holds: a segment never spans more.
    pub max_binding_elems: usize,
}

/// How the rows of one call are walked: the split, the lanes per row (WG for split rows),
/// and whether rows are held in workgroup memory between two passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RowPlan {
    pub split: Split,
    pub lanes: u32,
    pub held: bool,
}

/// The walk of a call's rows. `twice`: the kernel reads each row twice and may hold it.
pub(crate) fn plan(layout: &RowLayout, t: &WalkTuning, twice: bool) -> RowPlan {
    let split = split(layout, t);
    if split.segments > 1 {
        return RowPlan {
            split,
            lanes: t.workgroup_size,
            held: false,
        };
    }
    if let Some(lanes) = held_lanes(layout, t).filter(|_| twice) {
        return RowPlan {
            split,
            lanes,
            held: true,
        };
    }
    RowPlan {
        split,
        lanes: lanes(layout, t.workgroup_size, t.max_loop_trips),
        held: false,
    }
}

#[cfg(test)]
impl RowLayout {
    fn with_outer(self, outer: usize) -> Self {
        Self { outer, ..self }
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
    use proptest::prelude::*;

    fn l(classes: usize, inner: usize) -> RowLayout {
        RowLayout {
            outer: 1,
            classes,
            inner,
        }
    }

    fn tuning(workgroup_size: u32, min_workgroups: u32, hold_vec4s: usize) -> WalkTuning {
        WalkTuning {
            workgroup_size,
            min_workgroups,
            max_loop_trips: MAX_LOOP_TRIPS,
            hold_vec4s,
            max_binding_elems: 1 << 25,
        }
    }

    #[test]
    fn long_rows_take_the_workgroup_and_short_ones_share_it() {
        let lanes = |l: &RowLayout, wg| lanes(l, wg, MAX_LOOP_TRIPS);
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
        let held = |l: &RowLayout, wg, v| held_lanes(l, &tuning(wg, 1, v));
        // 4096 classes: 1025 vec4s a row; 2816 hold two rows, so 128 lanes of 256 each.
        assert_eq!(held(&l(4096, 1), 256, 2816), Some(128));
        assert_eq!(held(&l(4096, 1), 256, 1025), Some(256));
        assert_eq!(held(&l(4096, 1), 256, 1024), None);
        assert_eq!(held(&l(32000, 1), 16, 1984), None);
        // Short rows keep their own lanes when every row of the workgroup fits.
        assert_eq!(held(&l(128, 1), 64, 4096), Some(1));
        assert_eq!(held(&l(128, 1), 64, 33 * 8), Some(8));
        assert_eq!(held(&l(100, 7), 64, 1 << 20), None);
    }

    #[test]
    fn few_long_rows_are_split_into_aligned_segments() {
        let l = RowLayout {
            outer: 64,
            classes: 262144,
            inner: 1,
        };
        let s = split(&l, &tuning(256, 1024, 0));
        assert_eq!((s.segments, s.len), (16, 16384));
        assert_eq!(
            split(&l, &tuning(256, 64, 0)),
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
        let s = split(&odd, &tuning(16, 64, 0));
        assert!(s.segments > 1 && s.len.is_multiple_of(4) && (s.segments - 1) * s.len < 10001);
        assert!(s.segments * s.len >= 10001);
        let strided = RowLayout {
            outer: 2,
            classes: 100000,
            inner: 3,
        };
        assert_eq!(split(&strided, &tuning(16, 4096, 0)).segments, 1);
    }

    /// Rows long enough to lose their tails to lavapipe's loop limit are cut into segments
    /// short enough for the software adapters' loop limit.
    #[test]
    fn rows_past_the_loop_limit_are_split() {
        let t = tuning(8, 4, 0);
        for (rows, c, inner) in [
            (1, 5_000_000, 1),
            (1, 4_194_304, 1),
            (16, 4_200_000, 1),
            (2, 4_500_000, 2),
            (1, 2_000_000, 1),
            (1, (1 << 24) + 3, 1),
            (2, 16_000_000, 1),
        ] {
            let layout = RowLayout {
                outer: rows,
                classes: c,
                inner,
            };
            let p = plan(&layout, &t, true);
            assert!(p.split.segments > 1, "{layout:?}");
            assert!(p.split.len as usize <= lane_values(&layout, MAX_LOOP_TRIPS) * 8);
        }
        // The performance shapes keep their walk.
        for (rows, c) in [(1024, 32000), (8192, 4096), (64, 262144)] {
            let p = plan(&l(c, 1).with_outer(rows), &t, true);
            assert_eq!((p.split.segments, p.lanes), (1, 8), "{rows}x{c}");
        }
    }

    /// Layouts up to 2^31 classes, of every stride, workgroup size and binding size.
    fn case() -> impl Strategy<Value = (RowLayout, WalkTuning)> {
        (
            (1usize..2000, 1usize..=(1 << 31), 1usize..50),
            (
                0u32..=10,
                1u32..=4096,
                8u32..=65_535,
                0usize..4096,
                8u32..=30,
            ),
        )
            .prop_map(
                |((outer, classes, inner), (wg, min_wg, trips, hold, bind))| {
                    let layout = RowLayout {
                        outer,
                        classes: classes >> (outer.ilog2() + inner.ilog2()).min(30),
                        inner,
                    };
                    let t = WalkTuning {
                        max_loop_trips: trips,
                        max_binding_elems: 1 << bind,
                        ..tuning(1 << wg, min_wg, hold)
                    };
                    (layout, t)
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Every class of every row is walked by exactly one segment, every lane's walk stays
        /// within the loop budget, and the indices the kernels form fit in u32.
        #[test]
        fn every_element_is_covered_once_within_the_loop_budget((layout, t) in case()) {
            let p = plan(&layout, &t, true);
            let s = p.split;
            let c = layout.classes;
            prop_assert!(s.segments >= 1 && s.len >= 1 || c == 0);
            let mut next = 0;
            for k in 0..s.segments {
                let r = s.classes(k, c);
                prop_assert_eq!(r.start, next);
                prop_assert!(!r.is_empty() || c == 0);
                next = r.end;
            }
            prop_assert_eq!(next, c);
            if s.segments > 1 {
                prop_assert!(s.len.is_multiple_of(4));
                prop_assert_eq!(p.lanes, t.workgroup_size);
                prop_assert!(!p.held);
            }
            prop_assert!(p.lanes.is_power_of_two() && p.lanes <= t.workgroup_size);
            // Trips of the longest lane: two walks of its share, 4 values a trip
            // (contiguous) or 1 (strided).
            let per_trip = if layout.inner == 1 { 4 } else { 1 };
            let share = (s.len as usize).min(c).div_ceil(p.lanes as usize);
            prop_assert!(2 * share.div_ceil(per_trip) <= t.max_loop_trips as usize + 4,
                "share {} of {:?} at {:?}", share, layout, p);
            // Segment indices (row · S + segment) stay below the element count, which a chunk
            // keeps within u32 (src/geometry/chunks.rs).
            let groups = layout.rows() as u64 * s.segments as u64;
            prop_assert!(groups <= (layout.len() as u64).max(layout.rows() as u64));
            // Chunks: every element bound exactly once, in order, each within one binding
            // (where that is at most a few thousand chunks, to keep the test quick).
            if layout.len() / t.max_binding_elems + layout.outer < 5000 {
                let bytes = t.max_binding_elems as u64 * 4;
                match crate::geometry::chunks::plan(&layout, &s, bytes) {
                    Err(_) => prop_assert!(4 * layout.inner > t.max_binding_elems),
                    Ok(chunks) => {
                        let mut next = 0;
                        for ch in &chunks {
                            let e = ch.elems(&layout, &s);
                            prop_assert_eq!(e.start, next);
                            // No class at all (C = 0, which `case` can draw) binds nothing.
                            prop_assert!(e.len() <= t.max_binding_elems);
                            prop_assert!(!e.is_empty() || c == 0);
                            prop_assert_eq!(ch.layout(&layout, &s).len(), e.len());
                            next = e.end;
                        }
                        prop_assert_eq!(next, layout.len());
                    }
                }
            }
        }
    }
}
