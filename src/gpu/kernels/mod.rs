//! The kernels: one typed key per pipeline (`key`), the WGSL composer and bind layouts
//! (`source`), and the cache that compiles each shader module and pipeline once (`cache`).

mod cache;
mod key;
mod params;
mod source;

pub(crate) use cache::Kernels;
pub(crate) use key::{Entry, KernelKey, Variant};
pub(crate) use params::uniform;
#[cfg(test)]
pub(crate) use params::Uniform;
pub(crate) use source::{reduce_block_len, DeviceCaps, Family, RowReduce};
