//! Catching a dependency's panic quietly: [`catch_quiet`] runs a call into a third-party decoder
//! under `catch_unwind` with a panic hook that stays silent while such a call is in progress on
//! this thread, so a corrupt file gives the caller's error message and no `panicked at` line
//! (and a fuzzing harness whose hook aborts on every panic sees none for caught ones). Panics
//! anywhere else go to the hook that was installed before. Only for calls into dependencies:
//! a panic in steerlab's own code is a bug and must stay loud.
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    static QUIET: Cell<u32> = const { Cell::new(0) };
}

static INSTALL: Once = Once::new();

/// Runs `f`, returning its panic payload as an error instead of unwinding further, without
/// printing the panic.
pub fn catch_quiet<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if QUIET.with(|q| q.get()) == 0 {
                previous(info);
            }
        }));
    });
    QUIET.with(|q| q.set(q.get() + 1));
    let r = catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(q.get() - 1));
    r
}

/// The text of a panic payload (`panic!` with a literal or a formatted message).
pub fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "no message".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caught_panic_is_returned() {
        let r = catch_quiet(|| -> u32 { panic!("decoder broke") });
        let p = r.unwrap_err();
        assert_eq!(panic_text(&*p), "decoder broke");
        assert_eq!(catch_quiet(|| 3).unwrap(), 3);
    }
}
