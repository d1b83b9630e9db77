//! The `XENT_*` environment switches, read once when a [`super::Context`] is made, each
//! validated: a switch is `0` or `1`, a size is digits, and anything else is an error rather
//! than silently ignored. [`super::ContextOptions`] fields take precedence over them.

use crate::error::{Result, XentError};

/// What the environment asks for; `None` where it says nothing.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Switches {
    /// `XENT_WORKGROUP_SIZE`: a power of two (checked against the adapter later); `0` is the
    /// default.
    pub workgroup_size: Option<u32>,
    /// `XENT_HOLD_ROWS`: `1` holds rows in workgroup memory, `0` does not.
    pub hold_rows: Option<bool>,
    /// `XENT_NO_WIDE_LOADS=1`: CPU adapters read inputs 4 at a time, as GPUs do.
    pub no_wide_loads: bool,
    /// `XENT_NO_SUBGROUPS=1`: reduce through workgroup memory even where subgroups exist.
    pub no_subgroups: bool,
}

impl Switches {
    /// Reads and checks every switch.
    pub fn from_env() -> Result<Self> {
        Ok(Self {
            workgroup_size: size("XENT_WORKGROUP_SIZE")?,
            hold_rows: flag("XENT_HOLD_ROWS")?,
            no_wide_loads: flag("XENT_NO_WIDE_LOADS")?.unwrap_or(false),
            no_subgroups: flag("XENT_NO_SUBGROUPS")?.unwrap_or(false),
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
            assert!(Switches::from_env().is_err(), "XENT_WORKGROUP_SIZE={v:?}");
        }
        set("XENT_WORKGROUP_SIZE", "0");
        assert_eq!(Switches::from_env().unwrap().workgroup_size, None);
        set("XENT_WORKGROUP_SIZE", "32");
        assert_eq!(Switches::from_env().unwrap().workgroup_size, Some(32));
        std::env::remove_var("XENT_WORKGROUP_SIZE");
        for name in ["XENT_HOLD_ROWS", "XENT_NO_WIDE_LOADS", "XENT_NO_SUBGROUPS"] {
            for v in ["yes", "true", "2", " 1", ""] {
                set(name, v);
                assert!(Switches::from_env().is_err(), "{name}={v:?}");
            }
            set(name, "0");
            let s = Switches::from_env().unwrap();
            assert!(!s.no_wide_loads && !s.no_subgroups && s.hold_rows != Some(true));
            set(name, "1");
            let s = Switches::from_env().unwrap();
            assert!(s.no_wide_loads || s.no_subgroups || s.hold_rows == Some(true));
            std::env::remove_var(name);
        }
        let s = Switches::from_env().unwrap();
        assert_eq!(s.hold_rows, None);
    }
}
