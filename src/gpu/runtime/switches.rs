//! The `XENT_*` environment switches, read only when asked: [`ContextOptions::from_env`].

use crate::error::{Result, XentError};
use crate::gpu::runtime::tuning::ContextOptions;

impl ContextOptions {
    /// The options the `XENT_*` environment variables ask for, each validated (a switch is
    /// `0` or `1`, a size is digits; anything else is an error, not ignored); the other
    /// fields are `None`. The library never reads the environment itself: the `xent` CLI
    /// and the tests call this, and so may a program that wants the same switches.
    ///
    /// - `XENT_WORKGROUP_SIZE=N`: [`ContextOptions::workgroup_size`] (`0`: the default);
    /// - `XENT_HOLD_ROWS=0|1`: [`ContextOptions::hold_rows`];
    /// - `XENT_NO_WIDE_LOADS=0|1`: `1` turns [`ContextOptions::wide_loads`] off;
    /// - `XENT_NO_SUBGROUPS=0|1`: `1` turns [`ContextOptions::subgroups`] off.
    pub fn from_env() -> Result<Self> {
        Ok(Self {
            workgroup_size: size("XENT_WORKGROUP_SIZE")?,
            hold_rows: flag("XENT_HOLD_ROWS")?,
            wide_loads: flag("XENT_NO_WIDE_LOADS")?.map(|no| !no),
            subgroups: flag("XENT_NO_SUBGROUPS")?.map(|no| !no),
            ..Self::default()
        })
    }
}

fn var(name: &str) -> Result<Option<String>> {
    match std::env::var(name) {
        Ok(v) => Ok(Some(v)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(v)) => Err(XentError::InvalidArgument(format!(
            "{name}={v:?}: not valid text"
        ))),
    }
}

/// `0` or `1`; unset is `None`.
fn flag(name: &str) -> Result<Option<bool>> {
    match var(name)?.as_deref() {
        None => Ok(None),
        Some("0") => Ok(Some(false)),
        Some("1") => Ok(Some(true)),
        Some(v) => Err(XentError::InvalidArgument(format!(
            "{name}={v:?}: expected 0 or 1"
        ))),
    }
}

/// Digits only (no sign, no spaces); unset and `0` are `None`.
fn size(name: &str) -> Result<Option<u32>> {
    let Some(v) = var(name)? else {
        return Ok(None);
    };
    match v.parse::<u32>() {
        Ok(0) => Ok(None),
        Ok(n) if v.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(n)),
        _ => Err(XentError::InvalidArgument(format!(
            "{name}={v:?}: expected a power of two such as 64 (0: the default)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One test touches the variables, so no other test races it.
    #[test]
    fn switches_are_zero_or_one_and_sizes_are_digits() {
        let set = |k: &str, v: &str| std::env::set_var(k, v);
        for v in ["abc", "-8", " 16", "+16", "16 ", ""] {
            set("XENT_WORKGROUP_SIZE", v);
            assert!(
                ContextOptions::from_env().is_err(),
                "XENT_WORKGROUP_SIZE={v:?}"
            );
        }
        set("XENT_WORKGROUP_SIZE", "0");
        assert_eq!(ContextOptions::from_env().unwrap().workgroup_size, None);
        set("XENT_WORKGROUP_SIZE", "32");
        assert_eq!(ContextOptions::from_env().unwrap().workgroup_size, Some(32));
        std::env::remove_var("XENT_WORKGROUP_SIZE");
        for name in ["XENT_HOLD_ROWS", "XENT_NO_WIDE_LOADS", "XENT_NO_SUBGROUPS"] {
            for v in ["yes", "true", "2", " 1", ""] {
                set(name, v);
                assert!(ContextOptions::from_env().is_err(), "{name}={v:?}");
            }
            set(name, "0");
            let s = ContextOptions::from_env().unwrap();
            assert!(s.wide_loads != Some(false) && s.subgroups != Some(false));
            assert!(s.hold_rows != Some(true));
            set(name, "1");
            let s = ContextOptions::from_env().unwrap();
            let off = s.wide_loads == Some(false) || s.subgroups == Some(false);
            assert!(off || s.hold_rows == Some(true));
            std::env::remove_var(name);
        }
        let s = ContextOptions::from_env().unwrap();
        assert_eq!(s.hold_rows, None);
    }
}
