//! The binary's error: the library's, or what only the command line meets (files, stdout,
//! arguments).

use wgpu_xent::XentError;

/// Everything `xent` can fail with; `main` prints it after `error: `.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// What the library refused or failed at, its op names in the CLI's words.
    #[error("{}", cli_words(&.0.to_string()))]
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
    /// An I/O error on a named file: `reading t.npy: No such file or directory (os error 2)`.
    #[error("{action} {path}: {source}")]
    File {
        /// `reading` or `writing`.
        action: &'static str,
        /// The file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// An I/O error (a write to stdout, or one not yet tied to a file).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl CliError {
    /// An error reading `path`.
    pub fn reading(path: impl std::fmt::Display, source: std::io::Error) -> Self {
        CliError::File {
            action: "reading",
            path: path.to_string(),
            source,
        }
    }

    /// An error writing `path`.
    pub fn writing(path: impl std::fmt::Display, source: std::io::Error) -> Self {
        CliError::File {
            action: "writing",
            path: path.to_string(),
            source,
        }
    }
}

/// The library's messages name ops as PyTorch does (`cross_entropy`); the CLI calls them
/// `cross-entropy`, `nll-loss`, `log-softmax`.
pub fn cli_words(message: &str) -> String {
    [
        ("linear_cross_entropy", "linear-cross-entropy"),
        ("cross_entropy", "cross-entropy"),
        ("nll_loss", "nll-loss"),
        ("log_softmax", "log-softmax"),
    ]
    .iter()
    .fold(message.to_string(), |m, (lib, cli)| m.replace(lib, cli))
}

/// Shorthand for results of the binary.
pub type Result<T, E = CliError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_op_names_become_the_cli_names() {
        assert_eq!(
            cli_words("nll_loss has no label_smoothing; cross_entropy: x"),
            "nll-loss has no label_smoothing; cross-entropy: x"
        );
        assert_eq!(
            cli_words("linear_cross_entropy: expected input to be 1-D or 2-D"),
            "linear-cross-entropy: expected input to be 1-D or 2-D"
        );
    }
}
