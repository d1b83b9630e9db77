//! Output files, all or nothing: each is written to a temporary file in its own directory
//! (`.xent-tmp-*`), flushed and fsync'd, and renamed over its destination only once every
//! output of the run is complete. A run that fails leaves no output and the older files
//! untouched; a killed one leaves at most a stray `.xent-tmp-*` file.

use crate::error::{CliError, Result};
use std::ffi::OsString;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use tempfile::NamedTempFile;

/// The prefix of temporary files.
pub const TMP_PREFIX: &str = ".xent-tmp-";

fn named(path: &Path, e: std::io::Error) -> CliError {
    CliError::writing(path.display(), e)
}

/// The directory an output goes into (`.` for a bare file name).
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Where an output at `path` goes: `path`, or the file a symlink there leads to (the
/// link stays a link). An existing destination must be a regular file: the rename would
/// replace a device or a FIFO with a file, not write into it.
fn destination(path: &Path) -> std::result::Result<PathBuf, String> {
    let Ok(meta) = path.symlink_metadata() else {
        return Ok(path.to_path_buf());
    };
    let real = match meta.file_type().is_symlink() {
        true => path
            .canonicalize()
            .map_err(|e| format!("a symlink to nothing that can be written: {e}"))?,
        false => path.to_path_buf(),
    };
    let meta = real.metadata().map_err(|e| e.to_string())?;
    if meta.is_dir() {
        return Err("is a directory".into());
    }
    if !meta.is_file() {
        return Err(
            "is not a regular file (a device, FIFO or socket): outputs are written whole, then renamed into place".into(),
        );
    }
    Ok(real)
}

/// What a rename onto `path` replaces: its directory, resolved, and its file name. Refuses,
/// naming the flag and path, a path with no file name, a directory or other file that is
/// not regular, and a parent that is missing, not a directory or not writable (a temporary
/// file is made there and removed).
fn identity(flag: &str, path: &Path) -> Result<(PathBuf, OsString)> {
    let bad = |why: String| CliError::Arg(format!("{flag} {}: {why}", path.display()));
    let real = destination(path).map_err(bad)?;
    let path = real.as_path();
    let name = path
        .file_name()
        .ok_or_else(|| bad("not a file name".into()))?;
    let dir = parent(path);
    let shown = dir.display();
    let resolved = dir
        .canonicalize()
        .map_err(|e| bad(format!("directory {shown}: {e}")))?;
    if !resolved.is_dir() {
        return Err(bad(format!("{shown} is not a directory")));
    }
    tempfile::Builder::new()
        .prefix(TMP_PREFIX)
        .suffix(".tmp")
        .tempfile_in(&resolved)
        .map_err(|e| bad(format!("cannot write in directory {shown}: {e}")))?;
    Ok((resolved, name.to_owned()))
}

/// Checks every output before anything runs: each must be writable ([`identity`]) and no two
/// may be the same file (`--out o.npy --grad-out ./o.npy`: one would be lost). `None`
/// entries are outputs not asked for.
pub fn check_outputs(outputs: &[(&str, Option<&Path>)]) -> Result<()> {
    let mut seen: Vec<(&str, &Path, (PathBuf, OsString))> = Vec::new();
    for &(flag, path) in outputs {
        let Some(path) = path else { continue };
        let id = identity(flag, path)?;
        if let Some((other, other_path, _)) = seen.iter().find(|s| s.2 == id) {
            return Err(CliError::Arg(format!(
                "{other} {} and {flag} {} are the same file; give each output its own path",
                other_path.display(),
                path.display()
            )));
        }
        seen.push((flag, path, id));
    }
    Ok(())
}

/// Outputs written but not yet in place.
#[derive(Default)]
pub struct Staged {
    files: Vec<(NamedTempFile, PathBuf)>,
}

impl Staged {
    /// Writes one output into a temporary file beside `path`, flushed and fsync'd.
    pub fn stage(
        &mut self,
        path: &Path,
        write: impl FnOnce(&mut dyn Write) -> Result<()>,
    ) -> Result<()> {
        let real = destination(path).map_err(|why| named(path, std::io::Error::other(why)))?;
        let path = real.as_path();
        let mut builder = tempfile::Builder::new();
        builder.prefix(TMP_PREFIX).suffix(".tmp");
        #[cfg(unix)]
        {
            // As `File::create` would (less the umask), not tempfile's owner-only 0600.
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o666));
        }
        let tmp = builder.tempfile_in(parent(path)).map_err(|e| {
            let why = format!("cannot create a temporary file beside it: {e}");
            named(path, std::io::Error::new(e.kind(), why))
        })?;
        let mut w = BufWriter::new(tmp.as_file());
        write(&mut w).map_err(|e| match e {
            CliError::Io(e) => named(path, e),
            e => e,
        })?;
        w.flush().map_err(|e| named(path, e))?;
        drop(w);
        tmp.as_file().sync_all().map_err(|e| named(path, e))?;
        self.files.push((tmp, path.to_path_buf()));
        Ok(())
    }

    /// Renames every staged output into place, then syncs their directories.
    pub fn commit(self) -> Result<Vec<PathBuf>> {
        let mut done = Vec::new();
        for (tmp, dest) in self.files {
            tmp.persist(&dest).map_err(|e| named(&dest, e.error))?;
            done.push(dest);
        }
        for dest in &done {
            // Makes the renames durable; a directory that cannot be opened is not an error.
            if let Ok(dir) = std::fs::File::open(parent(dest)) {
                let _ = dir.sync_all();
            }
        }
        Ok(done)
    }
}
