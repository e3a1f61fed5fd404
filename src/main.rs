fn main() -> anyhow::Result<()> {
    steerlab::cli::main()
}
