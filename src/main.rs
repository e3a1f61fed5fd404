fn main() -> std::process::ExitCode {
    // Die quietly on a closed pipe (`steerlab ... | head`), like other command-line tools,
    // instead of panicking inside println!.
    #[cfg(unix)]
    // SAFETY: resetting SIGPIPE to its default action before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Keep freed activation buffers inside the process instead of handing them back to the
    // kernel after every op: a forward pass frees and re-allocates megabytes per layer (the
    // logits alone are 100 MB for the default model at 4 x 128), and glibc's defaults (mmap for
    // large blocks, trimming the heap top) turn each of those into fresh zeroed pages, about 5%
    // of a CPU forward (BENCHMARKS.md, session 5). Large blocks come from the heap instead and
    // up to 512 MiB of free heap stays mapped.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
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
