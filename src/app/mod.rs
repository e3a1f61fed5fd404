//! The eframe desktop application (GUI only: state, panels, job wiring; no algorithm code).

/// Opens the desktop app.
pub fn run_native() -> anyhow::Result<()> {
    anyhow::bail!("the desktop app is being built")
}
