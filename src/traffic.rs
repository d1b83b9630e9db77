//! Bytes each op moves per logit under the kernels' pass structure (the `Traffic:` / `Passes:`
//! lines of each shader header). `xent bench` computes GB/s from these.

/// The ops `xent bench` times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BenchOp {
    /// `cross_entropy` forward, class targets: one read of each logit.
    CrossEntropy,
    /// Fused `cross_entropy` forward + backward: two reads and one write per logit, or one
    /// read and one write when rows are held in workgroup memory.
    CrossEntropyGrad,
    /// The same with the gradient written over the logits.
    CrossEntropyGradInPlace,
    /// `nll_loss` forward: one read per row (of the target's value).
    NllLoss,
    /// `log_softmax`: two reads (statistics, then output) and one write, or one read and
    /// one write when rows are held in workgroup memory.
    LogSoftmax,
    /// `softmax`: as `log_softmax`.
    Softmax,
    /// A buffer-to-buffer copy: one read and one write.
    Copy,
    /// The trivial read kernel of bandwidth.wgsl: one read.
    Read,
    /// The trivial write kernel of bandwidth.wgsl: one write.
    Write,
}

impl BenchOp {
    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            BenchOp::CrossEntropy => "cross-entropy",
            BenchOp::CrossEntropyGrad => "cross-entropy-grad",
            BenchOp::CrossEntropyGradInPlace => "cross-entropy-grad-in-place",
            BenchOp::NllLoss => "nll-loss",
            BenchOp::LogSoftmax => "log-softmax",
            BenchOp::Softmax => "softmax",
            BenchOp::Copy => "copy",
            BenchOp::Read => "read",
            BenchOp::Write => "write",
        }
    }

    /// Bytes read and written per logit of `classes` classes, for elements of `elem_bytes`
    /// bytes, as the GPU kernels move them (per-row outputs and the reduction are excluded:
    /// they are C times smaller). `held`: the call kept its rows in workgroup memory for
    /// the second pass (`PreparedLoss::dispatch_labels` names a `*Held` kernel).
    pub fn bytes_per_logit(self, classes: usize, elem_bytes: usize, held: bool) -> f64 {
        let e = elem_bytes as f64;
        match self {
            BenchOp::CrossEntropy | BenchOp::Read | BenchOp::Write => e,
            BenchOp::CrossEntropyGrad
            | BenchOp::CrossEntropyGradInPlace
            | BenchOp::LogSoftmax
            | BenchOp::Softmax => match held {
                true => 2.0 * e,
                false => 3.0 * e,
            },
            BenchOp::NllLoss => e / classes.max(1) as f64,
            BenchOp::Copy => 2.0 * e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_per_logit_follow_the_pass_structure() {
        assert_eq!(BenchOp::CrossEntropy.bytes_per_logit(32000, 4, false), 4.0);
        assert_eq!(
            BenchOp::CrossEntropyGrad.bytes_per_logit(32000, 4, false),
            12.0
        );
        assert_eq!(
            BenchOp::CrossEntropyGradInPlace.bytes_per_logit(32000, 2, false),
            6.0
        );
        assert_eq!(BenchOp::LogSoftmax.bytes_per_logit(4096, 4, false), 12.0);
        assert_eq!(BenchOp::Softmax.bytes_per_logit(4096, 4, false), 12.0);
        assert_eq!(BenchOp::NllLoss.bytes_per_logit(1000, 4, false), 0.004);
        assert_eq!(BenchOp::Read.bytes_per_logit(1000, 4, false), 4.0);
        assert_eq!(BenchOp::Write.bytes_per_logit(1000, 4, false), 4.0);
        assert_eq!(BenchOp::Copy.bytes_per_logit(7, 4, false), 8.0);
        assert_eq!(BenchOp::Read.bytes_per_logit(7, 4, false), 4.0);
        // Rows held in workgroup memory: one read and one write.
        assert_eq!(
            BenchOp::CrossEntropyGrad.bytes_per_logit(4096, 4, true),
            8.0
        );
        assert_eq!(BenchOp::LogSoftmax.bytes_per_logit(4096, 2, true), 4.0);
        assert_eq!(BenchOp::CrossEntropy.bytes_per_logit(4096, 4, true), 4.0);
    }
}
