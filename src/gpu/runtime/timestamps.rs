//! GPU timestamps around a program's compute pass, where the adapter has `TIMESTAMP_QUERY`.

use crate::gpu::runtime::context::Context;
use crate::gpu::runtime::readback::Staging;

/// Two timestamp queries (start and end of the pass), with their resolve and staging buffers.
pub(crate) struct Timestamps {
    pub set: wgpu::QuerySet,
    pub resolve: wgpu::Buffer,
    pub staging: Staging,
}

impl Context {
    /// Timestamp queries, or `None` when the device was created without `TIMESTAMP_QUERY`.
    pub(crate) fn timestamp_queries(&self) -> Option<Timestamps> {
        if !self.features().contains(wgpu::Features::TIMESTAMP_QUERY) {
            return None;
        }
        let set = self
            .shared
            .device
            .create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("xent timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            });
        let resolve = self.shared.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("xent timestamp resolve"),
            size: 16,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        Some(Timestamps {
            set,
            resolve,
            staging: self.staging(16),
        })
    }
}
