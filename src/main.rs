fn main() -> std::process::ExitCode {
    // Die quietly on a closed pipe (`steerlab ... | head`), like other command-line tools,
    // instead of panicking inside println!.
    #[cfg(unix)]
    // SAFETY: resetting SIGPIPE to its default action before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    match steerlab::cli::main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line of context chain per cause; no backtrace noise for users.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
