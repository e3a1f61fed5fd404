//! Command-line interface: clap subcommands mirroring the app. Every command here only parses
//! arguments, calls the library and prints (text or `--json`); no algorithm code lives here
//! ([`bench`] holds the benchmark workloads, which only time library calls).
use clap::{Parser, Subcommand};

pub mod bench;
mod checks;
mod data_cmd;
mod dissect_cmd;
mod model_cmds;
pub mod progress;
mod sae_cmd;
mod sae_interop;
mod serve_cmd;
pub mod signals;
mod steer_cmd;
mod steer_eval_cmd;
mod steer_judge_cmd;

/// steerlab: activation steering and preference interpretability workbench.
///
/// Without a subcommand, opens the desktop app.
#[derive(Debug, Parser)]
#[command(name = "steerlab", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Top-level subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open the desktop app (the default when no subcommand is given).
    Gui,
    /// Describe a model: architecture, layers, hidden size, vocabulary, parameters.
    Info(model_cmds::InfoArgs),
    /// Run a forward pass and save logits and every residual stream ("run with cache").
    Run(model_cmds::RunArgs),
    /// Generate text, optionally steered.
    Generate(model_cmds::GenerateArgs),
    /// Preference data: check, convert, split, synthesise, fetch the default sets.
    #[command(subcommand)]
    Data(data_cmd::DataCommand),
    /// Factor-level dissection of preference labels (Bayesian logistic regression).
    Dissect(dissect_cmd::DissectArgs),
    /// Steering vectors: train (BiPO/CAA/PCA), evaluate over a multiplier sweep, export.
    #[command(subcommand)]
    Steer(steer_cmd::SteerCommand),
    /// Feature discovery (WIMHF): sparse autoencoder on preference embedding differences.
    #[command(subcommand)]
    Sae(sae_cmd::SaeCommand),
    /// Benchmarks: forward throughput, BiPO step, SAE training, dissection fit.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// OpenAI-compatible local server where each request may choose steering vectors by name.
    Serve(serve_cmd::ServeArgs),
}

/// Entry point of the `steerlab` binary.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        None | Some(Command::Gui) => crate::app::run_native(),
        Some(Command::Info(a)) => model_cmds::info(a),
        Some(Command::Run(a)) => model_cmds::run(a),
        Some(Command::Generate(a)) => model_cmds::generate(a),
        Some(Command::Data(c)) => data_cmd::run(c),
        Some(Command::Dissect(a)) => dissect_cmd::run(a),
        Some(Command::Steer(c)) => steer_cmd::run(c),
        Some(Command::Sae(c)) => sae_cmd::run(c),
        Some(Command::Bench(c)) => bench::run(c),
        Some(Command::Serve(a)) => serve_cmd::run(a),
    }
}
