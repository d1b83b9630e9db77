//! `.npy` files in and out (through `npyz`), with errors that name the file and what is wrong.

use crate::error::{Result, XentError};
use npyz::{DType, TypeChar};
use std::path::Path;

/// An array read from a `.npy` file.
#[derive(Clone, Debug)]
pub struct NpyArray<T> {
    /// Elements in C order.
    pub data: Vec<T>,
    /// Shape (`[]` for a 0-d array).
    pub shape: Vec<usize>,
}

/// Class indices or probabilities, as read from a target `.npy`.
#[derive(Clone, Debug)]
pub enum NpyTarget {
    /// `<i8` class indices.
    I64(NpyArray<i64>),
    /// `<i4` class indices.
    I32(NpyArray<i32>),
    /// `<f4` class probabilities.
    F32(NpyArray<f32>),
}

fn npy_err(path: &Path, message: impl Into<String>) -> XentError {
    XentError::Npy {
        path: path.display().to_string(),
        message: message.into(),
    }
}

fn open(path: &Path) -> Result<npyz::NpyFile<std::io::BufReader<std::fs::File>>> {
    let file = std::fs::File::open(path).map_err(|e| npy_err(path, e.to_string()))?;
    let npy = npyz::NpyFile::new(std::io::BufReader::new(file))
        .map_err(|e| npy_err(path, format!("not a valid .npy file: {e}")))?;
    if npy.order() != npyz::Order::C && npy.shape().len() > 1 {
        return Err(npy_err(
            path,
            "Fortran-order arrays are not supported; save it C-contiguous",
        ));
    }
    Ok(npy)
}

/// The `(type char, bytes)` of a plain little-endian dtype, e.g. `(Float, 4)` for `<f4`.
fn plain_dtype(path: &Path, dtype: &DType) -> Result<(TypeChar, u64, String)> {
    match dtype {
        DType::Plain(ts) => Ok((ts.type_char(), ts.size_field(), ts.to_string())),
        _ => Err(npy_err(
            path,
            "structured and array dtypes are not supported",
        )),
    }
}

fn read<T: npyz::Deserialize>(
    path: &Path,
    npy: npyz::NpyFile<impl std::io::Read>,
) -> Result<NpyArray<T>> {
    let shape = npy.shape().iter().map(|&d| d as usize).collect();
    let data = npy
        .into_vec::<T>()
        .map_err(|e| npy_err(path, e.to_string()))?;
    Ok(NpyArray { data, shape })
}

/// Reads a float32 (`<f4`) array.
pub fn read_f32(path: impl AsRef<Path>) -> Result<NpyArray<f32>> {
    let path = path.as_ref();
    let npy = open(path)?;
    match plain_dtype(path, &npy.dtype())? {
        (TypeChar::Float, 4, _) => read(path, npy),
        (_, _, name) => Err(npy_err(
            path,
            format!("expected float32 ('<f4'), got '{name}'"),
        )),
    }
}

/// Reads a float16 (`<f2`) array as its 16-bit patterns.
pub fn read_f16_bits(path: impl AsRef<Path>) -> Result<NpyArray<u16>> {
    let path = path.as_ref();
    let npy = open(path)?;
    match plain_dtype(path, &npy.dtype())? {
        (TypeChar::Float, 2, _) => {
            let a: NpyArray<half::f16> = read(path, npy)?;
            Ok(NpyArray {
                data: a.data.iter().map(|h| h.to_bits()).collect(),
                shape: a.shape,
            })
        }
        (_, _, name) => Err(npy_err(
            path,
            format!("expected float16 ('<f2'), got '{name}'"),
        )),
    }
}

/// The element type stored in a `.npy` file, e.g. `"<f4"`.
pub fn dtype_of(path: impl AsRef<Path>) -> Result<String> {
    let path = path.as_ref();
    let npy = open(path)?;
    Ok(plain_dtype(path, &npy.dtype())?.2)
}

/// Reads a uint16 (`<u2`) array, e.g. bfloat16 bit patterns.
pub fn read_u16(path: impl AsRef<Path>) -> Result<NpyArray<u16>> {
    let path = path.as_ref();
    let npy = open(path)?;
    match plain_dtype(path, &npy.dtype())? {
        (TypeChar::Uint, 2, _) => read(path, npy),
        (_, _, name) => Err(npy_err(
            path,
            format!("expected uint16 ('<u2'), got '{name}'"),
        )),
    }
}

/// Reads a target: int64 or int32 class indices, or float32 probabilities.
pub fn read_target(path: impl AsRef<Path>) -> Result<NpyTarget> {
    let path = path.as_ref();
    let npy = open(path)?;
    match plain_dtype(path, &npy.dtype())? {
        (TypeChar::Int, 8, _) => Ok(NpyTarget::I64(read(path, npy)?)),
        (TypeChar::Int, 4, _) => Ok(NpyTarget::I32(read(path, npy)?)),
        (TypeChar::Float, 4, _) => Ok(NpyTarget::F32(read(path, npy)?)),
        (_, _, name) => Err(npy_err(
            path,
            format!(
                "expected int64 or int32 class indices, or float32 probabilities; got '{name}'"
            ),
        )),
    }
}

/// Writes a float32 array with `shape` (`[]` writes a 0-d array).
pub fn write_f32(path: impl AsRef<Path>, data: &[f32], shape: &[usize]) -> Result<()> {
    use npyz::WriterBuilder;
    let path = path.as_ref();
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&shape)
        .writer(file)
        .begin_nd()?;
    w.extend(data.iter().copied())?;
    w.finish()?;
    Ok(())
}
