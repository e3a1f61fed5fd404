//! Checks run on command-line values before any long work starts: output paths (a regular file
//! or nothing, in a folder that exists and is writable), two outputs that would be the same file,
//! numbers that must be finite and in range, and sizes with documented upper bounds (README,
//! "Limits"). Every message names the flag and the value.
use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

/// Largest `data synth --n`.
pub const MAX_SYNTH_N: usize = crate::data::synth::MAX_N;
/// Largest `dissect --chains`.
pub const MAX_CHAINS: usize = crate::dissect::nuts::MAX_CHAINS;
/// Largest `dissect --draws` and `--warmup`.
pub const MAX_DRAWS: usize = crate::dissect::nuts::MAX_DRAWS;
/// Largest `steer train --epochs` and `sae run --epochs`.
pub const MAX_EPOCHS: usize = 100_000;
/// Largest batch size of any command.
pub const MAX_BATCH: usize = 65_536;
/// Largest `steer eval --multipliers` magnitude.
pub const MAX_MULTIPLIER: f64 = 1e4;

/// `FLAG PATH` must be writable as a file: checked before the work starts.
pub fn out_file(flag: &str, path: &Path) -> Result<()> {
    crate::report::atomic::check_output_file(path)
        .map_err(|e| anyhow::anyhow!("{flag} {}: {e}", path.display()))
}

/// `FLAG PATH` must be usable as an output folder: checked before the work starts.
pub fn out_dir(flag: &str, path: &Path) -> Result<()> {
    crate::report::atomic::check_output_dir(path)
        .map_err(|e| anyhow::anyhow!("{flag} {}: {e}", path.display()))
}

/// The path a file would have once written: symlinks and `..` of the existing part resolved.
fn resolved(path: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    match (std::fs::canonicalize(&parent), path.file_name()) {
        (Ok(p), Some(n)) => p.join(n),
        _ => path.to_path_buf(),
    }
}

/// True when two paths name the same file (after resolving what exists of them).
pub fn same_file(a: &Path, b: &Path) -> bool {
    resolved(a) == resolved(b)
}

/// `FLAG` must be finite and within `[lo, hi]`.
pub fn in_range(flag: &str, x: f64, lo: f64, hi: f64) -> Result<()> {
    if !x.is_finite() || x < lo || x > hi {
        bail!("{flag} {x}: must be a finite number from {lo} to {hi}");
    }
    Ok(())
}

/// `FLAG` must be finite and > 0 and at most `hi`.
pub fn positive(flag: &str, x: f64, hi: f64) -> Result<()> {
    if !x.is_finite() || x <= 0.0 || x > hi {
        bail!("{flag} {x}: must be a finite number above 0 and at most {hi}");
    }
    Ok(())
}

/// `FLAG` must be within `1..=max` (a documented limit, README "Limits").
pub fn count(flag: &str, n: usize, max: usize) -> Result<()> {
    if n == 0 || n > max {
        bail!("{flag} {n}: must be from 1 to {max} (README, \"Limits\")");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_checked_with_the_flag_named() {
        let e = in_range("--multipliers", f64::NAN, -1.0, 1.0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--multipliers NaN"), "{e}");
        assert!(in_range("--top-p", 1.5, 0.0, 1.0).is_err());
        assert!(in_range("--top-p", 0.5, 0.0, 1.0).is_ok());
        assert!(positive("--lr", 1e30, 1.0).is_err());
        assert!(positive("--lr", 0.0, 1.0).is_err());
        let e = count("--chains", 100_000, MAX_CHAINS)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--chains 100000") && e.contains("Limits"), "{e}");
        assert!(count("--chains", 0, MAX_CHAINS).is_err());
    }

    #[test]
    fn same_file_sees_through_spelling() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.jsonl");
        let b = d.path().join(".").join("a.jsonl");
        assert!(same_file(&a, &b));
        std::fs::write(&a, b"").unwrap();
        assert!(same_file(&a, &b));
        assert!(!same_file(&a, &d.path().join("b.jsonl")));
    }
}
