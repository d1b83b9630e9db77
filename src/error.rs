//! The one error type of the crate.

/// Everything that can go wrong, from bad input to a missing adapter.
///
/// Messages follow PyTorch's wording where PyTorch has one, so a user who knows
/// `torch.nn.functional` recognises them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum XentError {
    /// A class target that is neither in `[0, C)` nor `ignore_index`.
    #[error("Target {value} is out of bounds (at position {position:?}; expected a class in [0, {classes}) or ignore_index {ignore_index}).")]
    TargetOutOfBounds {
        /// Multi-index of the target, in the target's own shape.
        position: Vec<usize>,
        /// The offending value.
        value: i64,
        /// Number of classes C.
        classes: usize,
        /// The `ignore_index` in force.
        ignore_index: i64,
    },
    /// A `weight` whose length is not C.
    #[error("weight tensor should be defined either for all {classes} classes or no classes but got weight tensor of shape: {shape:?}")]
    WeightShape {
        /// Number of classes C.
        classes: usize,
        /// Shape of the weight given.
        shape: Vec<usize>,
    },
    /// Input and target disagree on N.
    #[error("Expected input batch_size ({input}) to match target batch_size ({target}).")]
    BatchMismatch {
        /// N of the input.
        input: usize,
        /// N of the target.
        target: usize,
    },
    /// A K-dimensional loss whose target is not `[N, d1..dk]` (PyTorch's `nll_loss2d` words
    /// it so for 4-D inputs; its other inputs get [`XentError::TargetSize`]).
    #[error("size mismatch (got input: {input:?} , target: {target:?})")]
    ShapeMismatch {
        /// Shape of the input.
        input: Vec<usize>,
        /// Shape of the target.
        target: Vec<usize>,
    },
    /// A class target whose shape is not `[N, d1..dk]` for an input `[N, C, d1..dk]`.
    #[error("Expected target size {expected:?}, got {got:?}")]
    TargetSize {
        /// `[N, d1..dk]`.
        expected: Vec<usize>,
        /// The target's shape.
        got: Vec<usize>,
    },
    /// A `dim` outside `[-rank, rank - 1]`.
    #[error("Dimension out of range (expected to be in range of [{low}, {high}], but got {dim})")]
    DimOutOfRange {
        /// The dim asked for.
        dim: i64,
        /// Lowest allowed value, `-rank`.
        low: i64,
        /// Highest allowed value, `rank - 1`.
        high: i64,
    },
    /// A shape that the operation cannot take at all (a rank-0 input, data of the wrong length...).
    #[error("{0}")]
    InvalidShape(String),
    /// An argument outside its domain (label smoothing, ignore_index with probabilities...).
    #[error("{0}")]
    InvalidArgument(String),
    /// No wgpu adapter could be found.
    #[error("no GPU adapter found ({detail}). wgpu-xent needs a Vulkan, Metal, DX12 or GL adapter; on Linux without a GPU install a software one: Mesa's llvmpipe (GL/EGL, package libegl-mesa0) or lavapipe (Vulkan, `apt-get install mesa-vulkan-drivers`). Choose one with WGPU_BACKEND=vulkan|gl.")]
    NoAdapter {
        /// What wgpu said.
        detail: String,
    },
    /// The adapter refused to create a device with the limits asked for.
    #[error("could not create a device on adapter {adapter}: {detail}")]
    RequestDevice {
        /// Adapter name.
        adapter: String,
        /// What wgpu said.
        detail: String,
    },
    /// The adapter cannot hold the tensors (out of memory, or a buffer above `max_buffer_size`).
    #[error("out of GPU memory: {0}")]
    OutOfMemory(String),
    /// A shape the GPU path cannot lay out within the adapter's limits.
    #[error("{0}")]
    Unsupported(String),
    /// wgpu reported a validation error (a bug in wgpu-xent: please report it).
    #[error("wgpu validation error: {0}")]
    Gpu(String),
    /// A blocking method of a prepared call was called while a future of the same thread
    /// (not yet finished) runs the call or waits to: finish or drop that future first. Runs
    /// on other threads are waited for, never an error.
    #[error("{0}: a run of this prepared call on this thread (a future not yet finished) is in flight; finish or drop it first")]
    Busy(String),
    /// Mapping a buffer or waiting on the device failed.
    #[error("GPU readback failed: {0}")]
    Readback(String),
}

/// Shorthand for results of this crate.
pub type Result<T, E = XentError> = std::result::Result<T, E>;
