//! What `eval` computed, in f32 or f64, as the arrays to write.

use wgpu_xent::cpu::linear::WideLinearOutput;
use wgpu_xent::cpu::wide::{WideLossAndGrad, WideOutput};
use wgpu_xent::{LinearOutput, LossAndGrad, Output};

/// What `eval` computed: f32 results, or f64 ones (the CPU reference on float64 logits).
pub enum Results {
    F32(LossAndGrad),
    F64(WideLossAndGrad),
    Linear(LinearOutput),
    WideLinear(WideLinearOutput),
}

/// One output's values.
pub enum Values<'a> {
    F32(&'a [f32]),
    F64(&'a [f64]),
}

impl Values<'_> {
    pub fn dtype(&self) -> &'static str {
        match self {
            Values::F32(_) => "float32",
            Values::F64(_) => "float64",
        }
    }

    /// The value of a one-element output, shortest round-trip digits.
    pub fn first(&self) -> String {
        match self {
            Values::F32(v) => v.first().map_or("-".into(), |v| v.to_string()),
            Values::F64(v) => v.first().map_or("-".into(), |v| v.to_string()),
        }
    }
}

/// One output's values and shape, in f32 or f64.
pub type Array<'a> = (Values<'a>, &'a [usize]);

impl Results {
    /// Every output there is, in order: the result, then the gradients (input, linear
    /// weight, linear bias) and the lse, each `None` where not computed.
    pub fn arrays(&self) -> [Option<Array<'_>>; 5] {
        fn f(o: &Output) -> Array<'_> {
            (Values::F32(&o.data), o.shape.as_slice())
        }
        fn w(o: &WideOutput) -> Array<'_> {
            (Values::F64(&o.data), o.shape.as_slice())
        }
        match self {
            Results::F32(r) => [
                Some(f(&r.loss)),
                r.grad.as_ref().map(f),
                None,
                None,
                r.lse.as_ref().map(f),
            ],
            Results::F64(r) => [
                Some(w(&r.loss)),
                r.grad.as_ref().map(w),
                None,
                None,
                r.lse.as_ref().map(w),
            ],
            Results::Linear(r) => [
                Some(f(&r.loss)),
                r.grad_input.as_ref().map(f),
                r.grad_linear_weight.as_ref().map(f),
                r.grad_linear_bias.as_ref().map(f),
                None,
            ],
            Results::WideLinear(r) => [
                Some(w(&r.loss)),
                r.grad_input.as_ref().map(w),
                r.grad_linear_weight.as_ref().map(w),
                r.grad_linear_bias.as_ref().map(w),
                None,
            ],
        }
    }
}
