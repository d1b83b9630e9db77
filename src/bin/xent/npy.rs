//! `.npy` files in and out (through `npyz`), with errors that name the file and what is wrong.
//!
//! A file is read once, into memory ([`NpyBytes`]), and parsed from there: FIFOs, `/dev/stdin`
//! and process substitutions work. The header's shape is checked before anything is allocated:
//! an element count that overflows, or that needs more data than the file holds, is refused.

use crate::error::{CliError, Result};
use npyz::{DType, NpyHeader, TypeChar};
use std::io::Write;
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
    /// `<u4` class indices.
    U32(NpyArray<u32>),
    /// `<f4` class probabilities.
    F32(NpyArray<f32>),
    /// `<f8` class probabilities.
    F64(NpyArray<f64>),
}

/// A float array in its own dtype: float16 (as bit patterns), float32 or float64.
#[derive(Clone, Debug)]
pub enum NpyFloats {
    /// `<f2`, the 16-bit patterns.
    F16(NpyArray<u16>),
    /// `<f4`.
    F32(NpyArray<f32>),
    /// `<f8`.
    F64(NpyArray<f64>),
}

fn npy_err(name: &str, message: impl Into<String>) -> CliError {
    CliError::Npy {
        path: name.to_string(),
        message: message.into(),
    }
}

/// The product of `dims`, or `None` when it (or any partial product of the non-zero dims,
/// which strides are made of) overflows `u64`.
pub fn checked_len(dims: impl IntoIterator<Item = u64>) -> Option<u64> {
    let mut nonzero = 1u64;
    let mut zero = false;
    for d in dims {
        zero |= d == 0;
        if d != 0 {
            nonzero = nonzero.checked_mul(d)?;
        }
    }
    Some(if zero { 0 } else { nonzero })
}

/// The shape written in a `.npy` header, read here because `npyz` multiplies it unchecked.
/// `Ok(None)` when the header cannot be read this way (npyz then says what is wrong).
fn header_shape(name: &str, bytes: &[u8]) -> Result<Option<Vec<u64>>> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Ok(None);
    }
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        _ if bytes.len() >= 12 => {
            let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
            (len as usize, 12)
        }
        _ => return Ok(None),
    };
    let Some(header) = start.checked_add(len).and_then(|end| bytes.get(start..end)) else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(header);
    let Some(at) = text.find("'shape'") else {
        return Ok(None);
    };
    let rest = &text[at..];
    let (Some(open), Some(close)) = (rest.find('('), rest.find(')')) else {
        return Ok(None);
    };
    if close < open {
        return Ok(None);
    }
    let tuple = &rest[open + 1..close];
    let dims = tuple
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse::<u64>())
        .collect::<std::result::Result<Vec<u64>, _>>()
        .map_err(|_| {
            npy_err(
                name,
                format!("header shape ({tuple}) is not a tuple of sizes"),
            )
        })?;
    Ok(Some(dims))
}

/// A `.npy` file read into memory, named (by its path, or `-` for stdin) in error messages.
#[derive(Clone, Debug)]
pub struct NpyBytes {
    name: String,
    bytes: Vec<u8>,
}

impl NpyBytes {
    /// Reads the whole file once.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| CliError::reading(&name, e))?;
        Ok(Self { name, bytes })
    }

    /// Bytes read elsewhere (e.g. from stdin), named `name` in error messages.
    pub fn new(name: impl Into<String>, bytes: Vec<u8>) -> Self {
        Self {
            name: name.into(),
            bytes,
        }
    }

    /// The name errors give.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Parses and checks the header; returns it and the data bytes.
    fn open(&self) -> Result<(NpyHeader, &[u8])> {
        let name = &self.name;
        if let Some(dims) = header_shape(name, &self.bytes)? {
            if checked_len(dims.iter().copied()).is_none_or(|n| n > usize::MAX as u64) {
                return Err(npy_err(
                    name,
                    format!("header shape {dims:?}: the element count overflows 64 bits"),
                ));
            }
        }
        let mut data: &[u8] = &self.bytes;
        let header = NpyHeader::from_reader(&mut data)
            .map_err(|e| npy_err(name, format!("not a valid .npy file: {e}")))?;
        if header.order() != npyz::Order::C && header.shape().len() > 1 {
            return Err(npy_err(
                name,
                "Fortran-order arrays are not supported; save it C-contiguous",
            ));
        }
        let (_, size, dtype) = plain_dtype(name, &header.dtype())?;
        let shape = header.shape().to_vec();
        let need = checked_len(shape.iter().copied()).and_then(|n| n.checked_mul(size));
        match need {
            None => Err(npy_err(
                name,
                format!("header shape {shape:?}: the element count overflows 64 bits"),
            )),
            Some(need) if need > data.len() as u64 => Err(npy_err(
                name,
                format!(
                    "header shape {shape:?} of '{dtype}' needs {need} data bytes, the file has {} \
                     (truncated?)",
                    data.len()
                ),
            )),
            Some(_) => Ok((header, data)),
        }
    }

    fn elements<T: npyz::Deserialize>(
        &self,
        header: NpyHeader,
        data: &[u8],
    ) -> Result<NpyArray<T>> {
        let shape = header.shape().iter().map(|&d| d as usize).collect();
        let data = npyz::NpyFile::with_header(header, data)
            .into_vec::<T>()
            .map_err(|e| npy_err(&self.name, e.to_string()))?;
        Ok(NpyArray { data, shape })
    }

    /// The element type, e.g. `"<f4"`.
    pub fn dtype(&self) -> Result<String> {
        let (header, _) = self.open()?;
        Ok(plain_dtype(&self.name, &header.dtype())?.2)
    }

    /// A float32 (`<f4`) array.
    pub fn f32(&self) -> Result<NpyArray<f32>> {
        let (header, data) = self.open()?;
        match plain_dtype(&self.name, &header.dtype())? {
            (TypeChar::Float, 4, _) => self.elements(header, data),
            (_, _, name) => Err(npy_err(
                &self.name,
                format!("expected float32 ('<f4'), got '{name}'"),
            )),
        }
    }

    /// A float64 (`<f8`) array.
    pub fn f64(&self) -> Result<NpyArray<f64>> {
        let (header, data) = self.open()?;
        match plain_dtype(&self.name, &header.dtype())? {
            (TypeChar::Float, 8, _) => self.elements(header, data),
            (_, _, name) => Err(npy_err(
                &self.name,
                format!("expected float64 ('<f8'), got '{name}'"),
            )),
        }
    }

    /// A float16, float32 or float64 array, in its own dtype; `what` names it in the error.
    pub fn floats(&self, what: &str) -> Result<NpyFloats> {
        let (header, data) = self.open()?;
        match plain_dtype(&self.name, &header.dtype())? {
            (TypeChar::Float, 2, _) => Ok(NpyFloats::F16(self.f16_bits()?)),
            (TypeChar::Float, 4, _) => Ok(NpyFloats::F32(self.elements(header, data)?)),
            (TypeChar::Float, 8, _) => Ok(NpyFloats::F64(self.elements(header, data)?)),
            (_, _, name) => Err(npy_err(
                &self.name,
                format!("expected {what} as float16, float32 or float64; got '{name}'"),
            )),
        }
    }

    /// A float16 (`<f2`) array, as its 16-bit patterns.
    pub fn f16_bits(&self) -> Result<NpyArray<u16>> {
        let (header, data) = self.open()?;
        match plain_dtype(&self.name, &header.dtype())? {
            (TypeChar::Float, 2, _) => {
                let a: NpyArray<half::f16> = self.elements(header, data)?;
                Ok(NpyArray {
                    data: a.data.iter().map(|h| h.to_bits()).collect(),
                    shape: a.shape,
                })
            }
            (_, _, name) => Err(npy_err(
                &self.name,
                format!("expected float16 ('<f2'), got '{name}'"),
            )),
        }
    }

    /// A uint16 (`<u2`) array, e.g. bfloat16 bit patterns.
    pub fn u16(&self) -> Result<NpyArray<u16>> {
        let (header, data) = self.open()?;
        match plain_dtype(&self.name, &header.dtype())? {
            (TypeChar::Uint, 2, _) => self.elements(header, data),
            (_, _, name) => Err(npy_err(
                &self.name,
                format!("expected uint16 ('<u2'), got '{name}'"),
            )),
        }
    }

    /// A target: int64, int32, uint32 or uint8 class indices (uint8, PyTorch's Byte targets,
    /// widened to int32), or float32 or float64 probabilities.
    pub fn target(&self) -> Result<NpyTarget> {
        let (header, data) = self.open()?;
        match plain_dtype(&self.name, &header.dtype())? {
            (TypeChar::Int, 8, _) => Ok(NpyTarget::I64(self.elements(header, data)?)),
            (TypeChar::Int, 4, _) => Ok(NpyTarget::I32(self.elements(header, data)?)),
            (TypeChar::Uint, 4, _) => Ok(NpyTarget::U32(self.elements(header, data)?)),
            (TypeChar::Uint, 1, _) => {
                let bytes: NpyArray<u8> = self.elements(header, data)?;
                Ok(NpyTarget::I32(NpyArray {
                    data: bytes.data.iter().map(|&v| v as i32).collect(),
                    shape: bytes.shape,
                }))
            }
            (TypeChar::Float, 4, _) => Ok(NpyTarget::F32(self.elements(header, data)?)),
            (TypeChar::Float, 8, _) => Ok(NpyTarget::F64(self.elements(header, data)?)),
            (_, _, name) => Err(npy_err(
                &self.name,
                format!(
                    "expected int64, int32, uint32 or uint8 class indices, or float32 or float64 probabilities; \
                     got '{name}'"
                ),
            )),
        }
    }
}

/// The `(type char, bytes, name)` of a plain dtype, e.g. `(Float, 4, "<f4")`.
fn plain_dtype(name: &str, dtype: &DType) -> Result<(TypeChar, u64, String)> {
    match dtype {
        DType::Plain(ts) => Ok((ts.type_char(), ts.size_field(), ts.to_string())),
        _ => Err(npy_err(
            name,
            "structured and array dtypes are not supported",
        )),
    }
}

/// Writes a float32 or float64 array with `shape` (`[]` for a 0-d array) to `w`. Refuses a
/// shape whose element count is not `data.len()`.
pub fn write_to<T: npyz::AutoSerialize + Copy>(
    w: impl Write,
    data: &[T],
    shape: &[usize],
) -> Result<()> {
    use npyz::WriterBuilder;
    let dims: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    if checked_len(dims.iter().copied()) != Some(data.len() as u64) {
        return Err(CliError::Arg(format!(
            "cannot write {} values with shape {shape:?}",
            data.len()
        )));
    }
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&dims)
        .writer(w)
        .begin_nd()?;
    w.extend(data.iter().copied())?;
    w.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version 1.0 `.npy` file of `descr` and `shape` (a Python tuple), then `data`.
    fn raw(descr: &str, shape: &str, data: &[u8]) -> NpyBytes {
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((header.len() as u16).to_le_bytes());
        bytes.extend(header.as_bytes());
        bytes.extend(data);
        NpyBytes::new("h.npy", bytes)
    }

    /// Headers whose element count overflows, or that need more data than the file holds,
    /// are refused before anything is allocated, with the file's name.
    #[test]
    fn lying_headers_are_refused() {
        let cases = [
            ("(4294967296, 4294967296)", vec![], "overflows"),
            ("(4611686018427387907, 4)", vec![0u8; 32], "overflows"),
            ("(1000, 1000)", vec![0u8; 16], "needs 4000000 data bytes"),
        ];
        for (shape, data, want) in cases {
            let e = raw("<f4", shape, &data).f32().unwrap_err().to_string();
            assert!(e.starts_with("h.npy: ") && e.contains(want), "{shape}: {e}");
        }
        let ok = raw("<f4", "(2,)", &[0u8; 8]).f32().unwrap();
        assert_eq!((ok.data, ok.shape), (vec![0.0, 0.0], vec![2]));
    }
}
