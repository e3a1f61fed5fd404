fn main() -> anyhow::Result<()> {
    // Die quietly on a closed pipe (`steerlab ... | head`), like other command-line tools,
    // instead of panicking inside println!.
    #[cfg(unix)]
    // SAFETY: resetting SIGPIPE to its default action before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    steerlab::cli::main()
}
