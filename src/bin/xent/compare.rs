//! Comparing a result against a reference: max absolute, relative and f32 ULP errors, and
//! how many elements are beyond `|a - b| <= tol_abs·min(1, max|b|) + tol_rel·|b|`.

/// The comparison of two equally long arrays.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Comparison {
    /// Number of elements compared.
    pub len: usize,
    /// max |ours - reference| over finite pairs.
    pub max_abs: f64,
    /// max |ours - reference| / |reference| over finite pairs with a non-zero reference.
    pub max_rel: f64,
    /// max distance in f32 units in the last place (u64::MAX where only one side is NaN).
    pub max_ulp: u64,
    /// Elements beyond tolerance: an error too large, a NaN or infinity on one side only.
    pub beyond: usize,
    /// The element furthest beyond tolerance (or nearest to it) among those that differ:
    /// (index, ours, reference); `None` when the arrays are identical.
    pub worst: Option<(usize, f32, f32)>,
}

/// Distance between two f32 values in units in the last place; equal NaNs are 0 apart.
pub fn ulp_distance(a: f32, b: f32) -> u64 {
    if a.is_nan() || b.is_nan() {
        return if a.is_nan() && b.is_nan() {
            0
        } else {
            u64::MAX
        };
    }
    // Maps the floats onto integers in the same order, +0 and -0 together.
    let key = |x: f32| {
        let i = x.to_bits() as i32;
        if i < 0 {
            i32::MIN as i64 - i as i64
        } else {
            i as i64
        }
    };
    key(a).abs_diff(key(b))
}

/// The scale of an array for [`compare`]: its largest finite magnitude, or 1 when it has none
/// (all zeros, or nothing finite).
pub fn scale_of(values: &[f32]) -> f64 {
    let m = values
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f64, |m, &v| m.max((v as f64).abs()));
    if m > 0.0 {
        m
    } else {
        1.0
    }
}

/// The absolute tolerance [`compare_scaled`] uses: `tol_abs·min(1, scale)`, and never below
/// the smallest normal f32 (a flushed denormal is not an error).
pub fn effective_tol_abs(tol_abs: f64, scale: f64) -> f64 {
    (tol_abs * scale.min(1.0)).max(f32::MIN_POSITIVE as f64)
}

/// Compares `ours` against `reference` elementwise: an element is beyond tolerance when
/// `|ours - reference| > tol_abs·min(1, S) + tol_rel·|reference|`, S the largest finite
/// `|reference|` ([`scale_of`]). Scaling `tol_abs` to the reference keeps arrays of tiny values
/// (a softmax over millions of classes) from passing anything, zeros included; below 1 it only
/// tightens the plain `tol_abs + tol_rel·|reference|`.
pub fn compare(ours: &[f32], reference: &[f32], tol_abs: f64, tol_rel: f64) -> Comparison {
    compare_scaled(ours, reference, tol_abs, tol_rel, scale_of(reference))
}

/// [`compare`] with the scale S given: for outputs whose values cancel to far below the terms
/// they are computed from (the gradient of a summed softmax), S is the terms' scale.
pub fn compare_scaled(
    ours: &[f32],
    reference: &[f32],
    tol_abs: f64,
    tol_rel: f64,
    scale: f64,
) -> Comparison {
    assert_eq!(
        ours.len(),
        reference.len(),
        "compared arrays differ in length"
    );
    let tol_abs = effective_tol_abs(tol_abs, scale);
    let mut c = Comparison {
        len: ours.len(),
        ..Default::default()
    };
    let mut worst_excess = f64::NEG_INFINITY;
    for (i, (&a, &b)) in ours.iter().zip(reference).enumerate() {
        let (x, y) = (a as f64, b as f64);
        c.max_ulp = c.max_ulp.max(ulp_distance(a, b));
        let excess = if x.is_nan() || y.is_nan() || x.is_infinite() || y.is_infinite() {
            if ulp_distance(a, b) == 0 {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            }
        } else {
            let err = (x - y).abs();
            c.max_abs = c.max_abs.max(err);
            if y != 0.0 {
                c.max_rel = c.max_rel.max(err / y.abs());
            }
            err - (tol_abs + tol_rel * y.abs())
        };
        if excess > 0.0 {
            c.beyond += 1;
        }
        // The worst element is one that differs: identical arrays have none.
        if excess > worst_excess && ulp_distance(a, b) != 0 {
            worst_excess = excess;
            c.worst = Some((i, a, b));
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulps_count_representable_steps() {
        assert_eq!(ulp_distance(1.0, 1.0), 0);
        assert_eq!(ulp_distance(1.0, f32::from_bits(1.0f32.to_bits() + 3)), 3);
        assert_eq!(ulp_distance(0.0, -0.0), 0);
        assert_eq!(ulp_distance(-f32::from_bits(1), f32::from_bits(1)), 2);
        assert_eq!(ulp_distance(f32::NAN, f32::NAN), 0);
        assert_eq!(ulp_distance(f32::NAN, 1.0), u64::MAX);
    }

    #[test]
    fn beyond_tolerance_and_worst_element() {
        let c = compare(
            &[1.0, 2.0, 3.1, f32::NAN],
            &[1.0, 2.00001, 3.0, f32::NAN],
            1e-3,
            0.0,
        );
        assert_eq!(c.beyond, 1);
        assert_eq!(c.worst.map(|w| w.0), Some(2));
        assert!((c.max_abs - 0.1).abs() < 1e-6);
        let c = compare(&[f32::INFINITY], &[1.0], 1.0, 1.0);
        assert_eq!(c.beyond, 1);
    }

    /// A softmax over 5,000,000 classes has every value near 1.6e-6, below the default
    /// tol_abs of 1e-5: a tail of zeros must still fail, and rounding-level errors pass.
    #[test]
    fn a_zero_tail_of_tiny_values_fails() {
        let n = 5_000_000usize;
        let reference: Vec<f32> = (0..n)
            .map(|i| (1.0 + 0.5 * ((i as f32) * 1e-3).sin()) / n as f32 * 1.3)
            .collect();
        let mut ours: Vec<f32> = reference
            .iter()
            .map(|&v| v * (1.0 + 3.0 * f32::EPSILON))
            .collect();
        let ok = compare(&ours, &reference, 1e-5, 1e-4);
        assert_eq!(ok.beyond, 0, "{ok:?}");
        ours[3_387_648..].iter_mut().for_each(|v| *v = 0.0);
        let bad = compare(&ours, &reference, 1e-5, 1e-4);
        assert_eq!(bad.beyond, n - 3_387_648, "{bad:?}");
        assert!(bad.worst.is_some_and(|w| w.1 == 0.0 && w.2 > 1e-7));
    }

    /// Values of magnitude 1 or more keep the plain tol_abs; an all-zero reference too.
    #[test]
    fn the_scale_only_tightens() {
        assert_eq!(effective_tol_abs(1e-5, 20.0), 1e-5);
        assert!((effective_tol_abs(1e-5, 1e-2) - 1e-7).abs() < 1e-20);
        assert_eq!(effective_tol_abs(0.0, 1e-2), f32::MIN_POSITIVE as f64);
        assert_eq!(scale_of(&[0.0, -0.0]), 1.0);
        assert_eq!(scale_of(&[f32::NAN, -3.0, 2.0]), 3.0);
        assert_eq!(compare(&[5e-6], &[0.0], 1e-5, 0.0).beyond, 0);
        // A denormal flushed to zero passes whatever the scale.
        assert_eq!(compare(&[0.0], &[1e-39], 1e-5, 1e-4).beyond, 0);
    }
}
