//! Bytes each op moves per logit under the kernels' pass structure (the `Traffic:` / `Passes:`
//! lines of each shader header). `xent bench` computes GB/s from these.

use clap::ValueEnum;

/// The ops `xent bench` times: those named by `--op`, and the read and write halves of the
/// roofline that `--op copy` also reports. The doc comments are `--op`'s help.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, ValueEnum)]
pub enum BenchOp {
    // `cross_entropy` forward, class targets.
    CrossEntropy,
    // Fused `cross_entropy` forward + backward.
    CrossEntropyGrad,
    /// The fused backward writing the gradient over the logits (f32 only).
    CrossEntropyGradInPlace,
    // `nll_loss` forward.
    NllLoss,
    // `log_softmax`.
    LogSoftmax,
    // `softmax`.
    Softmax,
    /// The adapter's buffer copy, a trivial read kernel and a trivial write kernel: the roofline.
    Copy,
    /// An empty submission's round trip: the adapter's floor, the least any call takes.
    Noop,
    /// The matrix product a[M,K]·b[N,K]ᵀ (shape MxNxK), in GFLOP/s.
    Matmul,
    /// linear_cross_entropy forward (shape NxDxC), beside the matmul of its size.
    LinearCrossEntropy,
    /// linear_cross_entropy forward + backward (shape NxDxC), beside the matmul of its size.
    LinearCrossEntropyGrad,
    // The trivial read kernel of bandwidth.wgsl (reported with `copy`).
    #[value(skip)]
    Read,
    // The trivial write kernel of bandwidth.wgsl (reported with `copy`).
    #[value(skip)]
    Write,
}

impl BenchOp {
    /// The name used on the command line (`--op`) and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            BenchOp::CrossEntropy => "cross-entropy",
            BenchOp::CrossEntropyGrad => "cross-entropy-grad",
            BenchOp::CrossEntropyGradInPlace => "cross-entropy-grad-in-place",
            BenchOp::NllLoss => "nll-loss",
            BenchOp::LogSoftmax => "log-softmax",
            BenchOp::Softmax => "softmax",
            BenchOp::Copy => "copy",
            BenchOp::Noop => "noop",
            BenchOp::Matmul => "matmul",
            BenchOp::LinearCrossEntropy => "linear-cross-entropy",
            BenchOp::LinearCrossEntropyGrad => "linear-cross-entropy-grad",
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
            // One read of each logit (cross-entropy forward), or one read or one write.
            BenchOp::CrossEntropy | BenchOp::Read | BenchOp::Write => e,
            // Two reads (statistics, then output or gradient) and one write, or one read
            // and one write when rows are held in workgroup memory.
            BenchOp::CrossEntropyGrad
            | BenchOp::CrossEntropyGradInPlace
            | BenchOp::LogSoftmax
            | BenchOp::Softmax => match held {
                true => 2.0 * e,
                false => 3.0 * e,
            },
            // One read per row (of the target's value).
            BenchOp::NllLoss => e / classes.max(1) as f64,
            // One read and one write.
            BenchOp::Copy => 2.0 * e,
            // Nothing; the products are timed in GFLOP/s, not bytes.
            BenchOp::Noop
            | BenchOp::Matmul
            | BenchOp::LinearCrossEntropy
            | BenchOp::LinearCrossEntropyGrad => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_command_line_names() {
        for op in BenchOp::value_variants() {
            let value = op.to_possible_value().expect("a command-line value");
            assert_eq!(op.name(), value.get_name());
        }
        assert_eq!(BenchOp::Read.name(), "read");
        assert_eq!(BenchOp::Write.name(), "write");
    }

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
