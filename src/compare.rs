//! Comparing a result against a reference: max absolute, relative and f32 ULP errors, and
//! how many elements are beyond `|a - b| <= tol_abs + tol_rel·|b|`.

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
    /// The element furthest beyond tolerance (or with the largest error): (index, ours, reference).
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

/// Compares `ours` against `reference` elementwise.
pub fn compare(ours: &[f32], reference: &[f32], tol_abs: f64, tol_rel: f64) -> Comparison {
    assert_eq!(
        ours.len(),
        reference.len(),
        "compared arrays differ in length"
    );
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
        if excess > worst_excess {
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
}
