//! Online log-sum-exp in f64: the CPU mirror of `Lse` in shaders/shared/lse.wgsl.

/// State `s = Σ exp(x - m)` over the values pushed so far.
#[derive(Clone, Copy, Debug)]
pub struct Lse {
    /// Running max (starts at `-f64::MAX`, so `-inf` logits never give `-inf - -inf`).
    pub m: f64,
    /// Sum of `exp(x - m)`.
    pub s: f64,
}

impl Lse {
    /// Nothing pushed yet.
    pub const EMPTY: Lse = Lse {
        m: -f64::MAX,
        s: 0.0,
    };

    /// Adds one value. A NaN or +inf value makes `s` NaN, as in the kernel.
    pub fn push(self, x: f64) -> Lse {
        // Written so that a NaN x never becomes the max; exp(NaN - m) still poisons s.
        let m = if x > self.m { x } else { self.m };
        Lse {
            m,
            s: self.s * (self.m - m).exp() + (x - m).exp(),
        }
    }

    /// This state and a later one's, as one (shaders/shared/lse.wgsl's `lse_merge`).
    pub fn merge(self, later: Lse) -> Lse {
        let m = if later.m > self.m { later.m } else { self.m };
        Lse {
            m,
            s: self.s * (self.m - m).exp() + later.s * (later.m - m).exp(),
        }
    }

    /// `m + log(s)`.
    pub fn value(self) -> f64 {
        self.m + self.s.ln()
    }

    /// log_softmax of `x` in this row, as `(x - m) - log(s)` (exact for huge logits).
    pub fn log_prob(self, x: f64) -> f64 {
        (x - self.m) - self.s.ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_rows_follow_pytorch() {
        let lse = |xs: &[f64]| xs.iter().fold(Lse::EMPTY, |a, &x| a.push(x)).value();
        assert_eq!(lse(&[f64::NEG_INFINITY; 3]), f64::NEG_INFINITY);
        assert!(lse(&[1.0, f64::INFINITY]).is_nan());
        assert!(lse(&[f64::NAN, 1.0]).is_nan());
        assert_eq!(lse(&[f64::NEG_INFINITY, 2.0]), 2.0);
        assert!((lse(&[1000.0, 1000.0]) - (1000.0 + 2f64.ln())).abs() < 1e-9);
    }
}
