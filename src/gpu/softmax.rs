//! Launchers for `shaders/softmax.wgsl`.

use super::chunks;
use super::context::Context;
use super::kernels::{Family, Kernel};
use crate::error::Result;
use crate::layout::RowLayout;
use crate::options::{Output, Tensor};

/// Keep in sync with `SoftmaxParams` in shaders/softmax.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct SoftmaxParams {
    rows: u32,
    classes: u32,
    inner: u32,
    _pad: u32,
}

impl Context {
    /// `torch.nn.functional.log_softmax(x, dim)`.
    pub fn log_softmax(&self, x: Tensor<f32>, dim: i64) -> Result<Output> {
        pollster::block_on(self.log_softmax_async(x, dim))
    }

    /// `torch.nn.functional.softmax(x, dim)`.
    pub fn softmax(&self, x: Tensor<f32>, dim: i64) -> Result<Output> {
        pollster::block_on(self.softmax_async(x, dim))
    }

    /// The async form of [`Context::log_softmax`].
    pub async fn log_softmax_async(&self, x: Tensor<'_, f32>, dim: i64) -> Result<Output> {
        self.softmax_family(Kernel::LogSoftmax, x, dim, None).await
    }

    /// The async form of [`Context::softmax`].
    pub async fn softmax_async(&self, x: Tensor<'_, f32>, dim: i64) -> Result<Output> {
        self.softmax_family(Kernel::Softmax, x, dim, None).await
    }

    /// `log_softmax`'s backward: `grad_out - exp(out) · Σ grad_out` along `dim`, given the
    /// forward output `out` and the upstream gradient `grad_out` (same shape).
    pub fn log_softmax_backward(
        &self,
        grad_out: Tensor<f32>,
        out: Tensor<f32>,
        dim: i64,
    ) -> Result<Output> {
        pollster::block_on(self.softmax_family(
            Kernel::LogSoftmaxBackward,
            out,
            dim,
            Some(grad_out),
        ))
    }

    /// `softmax`'s backward: `out · (grad_out - Σ grad_out · out)` along `dim`.
    pub fn softmax_backward(
        &self,
        grad_out: Tensor<f32>,
        out: Tensor<f32>,
        dim: i64,
    ) -> Result<Output> {
        pollster::block_on(self.softmax_family(Kernel::SoftmaxBackward, out, dim, Some(grad_out)))
    }

    /// One pass of a softmax-family kernel over every row of `x` (for the backward kernels,
    /// `x` is the forward output and `gy` the upstream gradient).
    async fn softmax_family(
        &self,
        kernel: Kernel,
        x: Tensor<'_, f32>,
        dim: i64,
        gy: Option<Tensor<'_, f32>>,
    ) -> Result<Output> {
        x.check_len("input")?;
        if let Some(gy) = gy {
            gy.check_len("grad_out")?;
            if gy.shape != x.shape {
                return Err(crate::XentError::ShapeMismatch {
                    input: x.shape.to_vec(),
                    target: gy.shape.to_vec(),
                });
            }
        }
        let layout = RowLayout::for_dim(x.shape, dim)?;
        let shape = x.shape.to_vec();
        if layout.is_empty() {
            return Ok(Output {
                data: vec![],
                shape,
            });
        }
        let chunks = chunks::plan(&layout, self.max_binding_bytes())?;
        self.scoped(async {
            let mut encoder = self.device.create_command_encoder(&Default::default());
            let mut staged = Vec::with_capacity(chunks.len());
            for chunk in &chunks {
                let elems = chunk.elems(&layout);
                let rows = chunk.rows(&layout).len();
                let params = self.uniform(
                    "softmax params",
                    &SoftmaxParams {
                        rows: rows as u32,
                        classes: layout.classes as u32,
                        inner: layout.inner as u32,
                        _pad: 0,
                    },
                );
                let input = self.upload("softmax x", &x.data[elems.clone()])?;
                let output = self.output("softmax y", elems.len())?;
                let upstream = match gy {
                    Some(gy) => self.upload("softmax gy", &gy.data[elems.clone()])?,
                    None => self.upload::<f32>("unused", &[])?,
                };
                let bind = self.bind(Family::Softmax, &[&params, &input, &output, &upstream]);
                let label = format!(
                    "{kernel:?} rows={rows} C={} inner={}",
                    layout.classes, layout.inner
                );
                self.dispatch(&mut encoder, kernel, &bind, rows as u64, &label)?;
                staged.push(self.stage(&mut encoder, &output, elems.len() as u64 * 4));
            }
            let parts = self.submit_and_read(encoder, staged).await?;
            Ok(Output {
                data: parts.concat(),
                shape,
            })
        })
        .await
    }
}
