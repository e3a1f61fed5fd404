//! `steerlab data ...` (owned by the data-layer work).
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Validate a dataset file.
    Check,
}

pub fn run(_c: DataCommand) -> anyhow::Result<()> {
    anyhow::bail!("`steerlab data` is being built")
}
