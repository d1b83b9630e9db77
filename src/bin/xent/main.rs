//! `xent`: offload a loss to the GPU, compare it with the CPU reference, list adapters.

mod bench;
mod check;
mod data;
mod eval;
mod info;
mod ops;
mod plot;

use clap::{Parser, Subcommand, ValueEnum};
use std::process::ExitCode;

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
}

/// Where an operation runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DeviceKind {
    /// The wgpu adapter chosen by WGPU_BACKEND / WGPU_ADAPTER_NAME.
    Gpu,
    /// The f64 CPU reference.
    Cpu,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info => info::run().map(|()| true),
        Command::Eval(args) => eval::run(&args).map(|()| true),
        Command::Check(args) => check::run(&args),
        Command::Bench(args) => bench::run(&args).map(|()| true),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
