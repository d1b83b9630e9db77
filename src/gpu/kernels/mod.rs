//! The kernels: one typed key per pipeline (`key`), the WGSL composer and bind layouts
//! (`source`), and the cache that compiles each shader module and pipeline once (`cache`).

mod cache;
mod key;
mod source;

pub(crate) use cache::Kernels;
pub(crate) use key::{Entry, KernelKey, Variant};
pub(crate) use source::{reduce_block_len, DeviceCaps, Family, RowReduce};
