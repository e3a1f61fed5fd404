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
            eprintln!("error: {}", error_text(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, without backtrace noise: each cause is appended
/// unless the text so far already says it (an error whose message includes its source would
/// otherwise print that source twice).
fn error_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if out.contains(&s) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&s);
    }
    out
}
