//! SIGINT/SIGTERM for long commands (`steer train`, `steer eval`, `sae run`): the first signal
//! sets a flag that the command's progress sink reports as a cancel (the job stops at its next
//! step and saves its last good state, as the app's Cancel does); a second one exits at once
//! with status 130. Other commands keep the default action (the process ends).
use std::sync::atomic::{AtomicUsize, Ordering};

static SIGNALS: AtomicUsize = AtomicUsize::new(0);

/// True once SIGINT or SIGTERM arrived (after [`install`]).
pub fn interrupted() -> bool {
    SIGNALS.load(Ordering::SeqCst) > 0
}

#[cfg(unix)]
extern "C" fn on_signal(_sig: libc::c_int) {
    let n = SIGNALS.fetch_add(1, Ordering::SeqCst);
    let msg: &[u8] = if n == 0 {
        b"\nsteerlab: interrupted; stopping at the next step and saving what is done (signal again to quit at once)\n"
    } else {
        b"\nsteerlab: interrupted twice; quitting without saving\n"
    };
    // SAFETY: write(2) and _exit(2) are async-signal-safe; `msg` is a valid static buffer.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
        if n > 0 {
            libc::_exit(130);
        }
    }
}

/// Installs the handler for SIGINT and SIGTERM (idempotent).
pub fn install() {
    #[cfg(unix)]
    // SAFETY: a plain handler that only touches an atomic and calls async-signal-safe functions.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        sa.sa_flags = libc::SA_RESTART;
        libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut());
        libc::sigaction(libc::SIGTERM, &sa, std::ptr::null_mut());
    }
}
