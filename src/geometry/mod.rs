//! The pure integer policy of how rows are walked: lanes per row, splits into segments, rows
//! held between passes (`rows`), chunks each within one binding and 2-D grids (`chunks`), the
//! blocks of a matrix product and the row chunks of linear_cross_entropy (`tiles`), and the
//! pieces of a product larger than one binding (`windows`).
//! No adapter is involved: property tests cover every size up to C = 2^31.

pub(crate) mod chunks;
pub(crate) mod rows;
pub(crate) mod tiles;
pub(crate) mod windows;
