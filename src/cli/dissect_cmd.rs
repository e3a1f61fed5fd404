//! `steerlab dissect` (owned by the dissection work).
use clap::Args;

#[derive(Debug, Args)]
pub struct DissectArgs {}

pub fn run(_a: DissectArgs) -> anyhow::Result<()> {
    anyhow::bail!("`steerlab dissect` is being built")
}
