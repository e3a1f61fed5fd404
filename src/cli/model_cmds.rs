//! `steerlab info|run|generate` (owned by the engine work).
use clap::Args;

#[derive(Debug, Args)]
pub struct InfoArgs {}
#[derive(Debug, Args)]
pub struct RunArgs {}
#[derive(Debug, Args)]
pub struct GenerateArgs {}

pub fn info(_a: InfoArgs) -> anyhow::Result<()> {
    anyhow::bail!("`steerlab info` is being built")
}
pub fn run(_a: RunArgs) -> anyhow::Result<()> {
    anyhow::bail!("`steerlab run` is being built")
}
pub fn generate(_a: GenerateArgs) -> anyhow::Result<()> {
    anyhow::bail!("`steerlab generate` is being built")
}
