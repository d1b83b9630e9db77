//! `xent`: offload a loss to the GPU, compare it with the CPU reference, list adapters.

/// `println!` that returns the write's error (`Result<(), CliError>`) instead of panicking:
/// stdout may be a closed pipe or a full disk.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*).map_err($crate::stdout_error)
    }};
}

/// `eprintln!` that never panics (a message to a closed stderr is lost, not fatal).
macro_rules! warn {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

mod bench;
mod bench_linear;
mod bench_shards;
mod check;
mod compare;
mod data;
mod error;
mod eval;
mod info;
mod linear;
mod measure;
mod npy;
mod ops;
mod output;
mod plot;
mod results;
mod rng;
mod sharded;
mod table;
mod traffic;

use clap::{Parser, Subcommand, ValueEnum};
use error::CliError;
use std::io::{ErrorKind, Write};
use std::process::ExitCode;

/// A failed write to stdout, its kind kept so that `main` knows a closed pipe.
pub fn stdout_error(e: std::io::Error) -> CliError {
    CliError::Io(std::io::Error::new(
        e.kind(),
        format!("writing to stdout: {e}"),
    ))
}

/// The exit status of a process killed by SIGPIPE, as shells report it.
const BROKEN_PIPE_STATUS: u8 = 141;

#[derive(Parser)]
#[command(
    name = "xent",
    version,
    about = "Softmax-family losses on any wgpu adapter, matching PyTorch"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the adapters wgpu sees, and the limits and features of the one xent would pick.
    Info,
    /// Evaluate one operation on .npy files and write the result as float32 .npy.
    Eval(eval::EvalArgs),
    /// Compare the GPU against the CPU reference on one configuration; exit 1 when any
    /// element is beyond tolerance.
    Check(check::CheckArgs),
    /// Time ops over a sweep of shapes, validated first, beside the copy/read/write roofline.
    Bench(bench::BenchArgs),
}

/// The operations, named as on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Op {
    /// torch.nn.functional.cross_entropy
    CrossEntropy,
    /// torch.nn.functional.nll_loss
    NllLoss,
    /// torch.nn.functional.log_softmax
    LogSoftmax,
    /// torch.nn.functional.softmax
    Softmax,
    /// torch.nn.functional.linear_cross_entropy: cross-entropy of input @ linear_weight.T
    /// (+ linear_bias)
    LinearCrossEntropy,
}

impl Op {
    /// The name used on the command line, e.g. `cross-entropy`.
    pub fn name(self) -> &'static str {
        match self {
            Op::CrossEntropy => "cross-entropy",
            Op::NllLoss => "nll-loss",
            Op::LogSoftmax => "log-softmax",
            Op::Softmax => "softmax",
            Op::LinearCrossEntropy => "linear-cross-entropy",
        }
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where an operation runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DeviceKind {
    /// The wgpu adapter chosen by WGPU_BACKEND / WGPU_ADAPTER_NAME.
    Gpu,
    /// The f64 CPU reference.
    Cpu,
}

/// Turns off Mesa's Vulkan device-select layer, unless the user set it up: it only reorders
/// devices (xent picks its own with WGPU_BACKEND / WGPU_ADAPTER_NAME), and without a session's
/// XDG_RUNTIME_DIR it prints two error lines that are not xent's on every start.
fn quiet_mesa_device_select() {
    let set = |name| std::env::var_os(name).is_some();
    if !set("NODEVICE_SELECT") && !set("MESA_VK_DEVICE_SELECT") {
        // Before any thread starts, so nothing reads the environment meanwhile.
        std::env::set_var("NODEVICE_SELECT", "1");
    }
}

fn main() -> ExitCode {
    quiet_mesa_device_select();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version go to stdout, usage errors to stderr: a failed write is
        // handled as any other (clap's own exit would ignore it).
        Err(e) => {
            let code = u8::try_from(e.exit_code()).unwrap_or(2);
            return match e.print() {
                Err(io) if !e.use_stderr() => finish(Err(stdout_error(io))),
                _ => ExitCode::from(code),
            };
        }
    };
    finish(match cli.command {
        Command::Info => info::run().map(|()| true),
        Command::Eval(args) => eval::run(&args).map(|()| true),
        Command::Check(args) => check::run(&args),
        Command::Bench(args) => bench::run(&args),
    })
}

/// The exit status of a run: 0 when it passed, 1 when a check failed or on an error (told on
/// stderr), 141 when stdout was closed under it.
fn finish(result: error::Result<bool>) -> ExitCode {
    let result = result.and_then(|ok| {
        std::io::stdout().flush().map_err(stdout_error)?;
        Ok(ok)
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        // The reader went away (`xent info | head -1`): stop quietly, as `yes | head` does.
        Err(CliError::Io(e)) if e.kind() == ErrorKind::BrokenPipe => {
            ExitCode::from(BROKEN_PIPE_STATUS)
        }
        Err(e) => {
            warn!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
