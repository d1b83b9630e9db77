//! The binary's error: the library's, or what only the command line meets (files, stdout,
//! arguments).

use wgpu_xent::XentError;

/// Everything `xent` can fail with; `main` prints it after `error: `.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// What the library refused or failed at.
    #[error(transparent)]
    Xent(#[from] XentError),
    /// A command-line argument outside its domain, or a shape it cannot take.
    #[error("{0}")]
    Arg(String),
    /// A `.npy` (or other input or output) file that cannot be read or written as asked.
    #[error("{path}: {message}")]
    Npy {
        /// The file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// An I/O error (a write to stdout, or one not yet tied to a file).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Shorthand for results of the binary.
pub type Result<T, E = CliError> = std::result::Result<T, E>;
