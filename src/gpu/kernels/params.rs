//! Uniform parameter structs: declared once in Rust by `uniform!`, which records each field's
//! name, type and offset, so that a unit test checks them against the WGSL struct of the same
//! name (where the fields' meaning is documented) with naga, with no adapter involved.

/// A uniform struct's recorded layout.
#[cfg(test)]
pub(crate) trait Uniform: bytemuck::Pod {
    /// The family whose shader declares the WGSL struct of this name.
    const FAMILY: super::Family;
    /// The struct's name, in Rust and in WGSL.
    const NAME: &'static str;
    /// (name, Rust type, byte offset) of every field, padding (`_…`) included.
    const FIELDS: &'static [(&'static str, &'static str, usize)];
}

/// Declares a `#[repr(C)]` Pod uniform struct and its [`Uniform`] layout record.
macro_rules! uniform {
    ($(#[$meta:meta])* $vis:vis struct $name:ident in $family:ident {
        $($field:ident: $ty:ty,)*
    }) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
        $vis struct $name {
            $($field: $ty,)*
        }

        #[cfg(test)]
        impl $crate::gpu::kernels::Uniform for $name {
            const FAMILY: $crate::gpu::kernels::Family = $crate::gpu::kernels::Family::$family;
            const NAME: &'static str = stringify!($name);
            const FIELDS: &'static [(&'static str, &'static str, usize)] =
                &[$((stringify!($field), stringify!($ty), std::mem::offset_of!($name, $field)),)*];
        }
    };
}
pub(crate) use uniform;

#[cfg(test)]
mod tests {
    use super::super::source::{DeviceCaps, RowReduce};
    use super::super::Variant;
    use super::Uniform;
    use crate::options::Float;

    fn check<U: Uniform>() {
        check_in::<U>(U::FAMILY);
    }

    /// The WGSL struct `U::NAME` in `family`'s shader has the Rust fields, in order, at the
    /// same offsets and of the same scalar types, and the Rust struct covers its size in
    /// whole 16-byte rows (padding fields, `_…`, may differ in shape).
    fn check_in<U: Uniform>(family: super::super::Family) {
        let variant = Variant {
            dtype: Float::F32,
            wide_in: false,
            wide_out: false,
            general: true,
        };
        let caps = DeviceCaps {
            f16: false,
            reduce: RowReduce::Tree,
        };
        let src = family.source(variant, caps);
        let module = naga::front::wgsl::parse_str(&src).expect("the shader parses");
        let (members, span) = module
            .types
            .iter()
            .find_map(|(_, ty)| match &ty.inner {
                naga::TypeInner::Struct { members, span }
                    if ty.name.as_deref() == Some(U::NAME) =>
                {
                    Some((members.clone(), *span))
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("{} is not declared in {family:?}'s shader", U::NAME));
        let wgsl: Vec<(String, String, usize)> = members
            .iter()
            .filter(|m| !m.name.as_deref().unwrap_or("_").starts_with('_'))
            .map(|m| {
                let ty = match module.types[m.ty].inner {
                    naga::TypeInner::Scalar(s) => match s.kind {
                        naga::ScalarKind::Uint => "u32",
                        naga::ScalarKind::Sint => "i32",
                        naga::ScalarKind::Float => "f32",
                        _ => "?",
                    },
                    _ => "?",
                };
                (
                    m.name.clone().unwrap_or_default(),
                    ty.to_string(),
                    m.offset as usize,
                )
            })
            .collect();
        let rust: Vec<(String, String, usize)> = U::FIELDS
            .iter()
            .filter(|(name, _, _)| !name.starts_with('_'))
            .map(|&(n, t, o)| (n.to_string(), t.to_string(), o))
            .collect();
        assert_eq!(rust, wgsl, "{}: Rust and WGSL fields differ", U::NAME);
        let size = std::mem::size_of::<U>();
        assert!(
            size.is_multiple_of(16) && size >= span as usize,
            "{}: {size} bytes in Rust, {span} in WGSL",
            U::NAME
        );
    }

    #[test]
    fn uniform_structs_match_their_wgsl() {
        check::<crate::gpu::ops::softmax::SoftmaxParams>();
        check::<crate::gpu::ops::loss::plan::LossParams>();
        check::<crate::gpu::ops::reduce::ReduceParams>();
        check::<crate::gpu::ops::bandwidth::BandwidthParams>();
        check::<crate::gpu::ops::convert::ConvertParams>();
        check::<crate::gpu::ops::linear::matmul::MatmulParams>();
        // Declared again in matmul_lanes.wgsl: both copies are checked.
        check_in::<crate::gpu::ops::linear::matmul::MatmulParams>(
            super::super::Family::MatmulLanes,
        );
    }
}
