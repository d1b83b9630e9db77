//! GPU timestamps around a program's compute pass, where the adapter has `TIMESTAMP_QUERY`.

use crate::gpu::runtime::context::Context;
use crate::gpu::runtime::readback::staging;
use crate::gpu::runtime::readback::Staging;

/// Two timestamp queries (start and end of the pass), with their resolve and staging buffers.
pub(crate) struct Timestamps {
    pub set: wgpu::QuerySet,
    pub resolve: wgpu::Buffer,
    pub staging: Staging,
}

/// Timestamp queries, or `None` when the device was created without `TIMESTAMP_QUERY`.
pub(crate) fn timestamp_queries(ctx: &Context) -> Option<Timestamps> {
    if !ctx.features().contains(wgpu::Features::TIMESTAMP_QUERY) {
        return None;
    }
    let set = ctx
        .shared
        .device
        .create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("xent timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count: 2,
        });
    let resolve = ctx.shared.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("xent timestamp resolve"),
        size: 16,
        usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    Some(Timestamps {
        set,
        resolve,
        staging: staging(ctx, 16),
    })
}
