//! [`CpuPath`]: which instruction set the CPU kernels of the speed layer run with (the packed
//! GEMM of [`super::cpu_matmul`], the inference kernels of [`super::cpu_infer`], the CPU
//! gradient kernels of [`super::kernels`] and the quantized kernels of [`super::quant`]),
//! chosen once per process from the CPU's features and cached.
//!
//! The choice is the best path the CPU runs (AVX-512F, else AVX2 + FMA on x86-64; NEON on
//! aarch64; else portable loops), unless `STEERLAB_CPU_PATH` names another one the CPU runs
//! (`avx512`, `avx2`, `neon`, `portable`; read on first use) or [`set_current`] says otherwise.
//! Every path computes the same values up to float rounding (the tests run each path the
//! machine has against the reference ops). Must not hold kernels.
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::model::{ModelError, Result};

/// An instruction-set path of the CPU kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CpuPath {
    /// x86-64 with AVX-512F (plus AVX2 and FMA): 16-lane kernels, a 12 × 32 GEMM tile.
    Avx512,
    /// x86-64 with AVX2 and FMA: 8-lane kernels, a 6 × 16 GEMM tile.
    Avx2,
    /// aarch64 with NEON: a 4-lane 6 × 16 GEMM tile; elementwise kernels portable.
    Neon,
    /// Plain Rust loops (what the compiler makes of them for the build's baseline target).
    Portable,
}

impl CpuPath {
    /// Every path, fastest first.
    pub const ALL: [CpuPath; 4] = [
        CpuPath::Avx512,
        CpuPath::Avx2,
        CpuPath::Neon,
        CpuPath::Portable,
    ];

    /// The name used by `STEERLAB_CPU_PATH` and in benchmark output.
    pub fn name(self) -> &'static str {
        match self {
            CpuPath::Avx512 => "avx512",
            CpuPath::Avx2 => "avx2",
            CpuPath::Neon => "neon",
            CpuPath::Portable => "portable",
        }
    }

    /// Whether this CPU can run the path.
    pub fn available(self) -> bool {
        match self {
            CpuPath::Avx512 => {
                #[cfg(target_arch = "x86_64")]
                {
                    is_x86_feature_detected!("avx512f")
                        && is_x86_feature_detected!("avx2")
                        && is_x86_feature_detected!("fma")
                }
                #[cfg(not(target_arch = "x86_64"))]
                {
                    false
                }
            }
            CpuPath::Avx2 => {
                #[cfg(target_arch = "x86_64")]
                {
                    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
                }
                #[cfg(not(target_arch = "x86_64"))]
                {
                    false
                }
            }
            CpuPath::Neon => {
                #[cfg(target_arch = "aarch64")]
                {
                    std::arch::is_aarch64_feature_detected!("neon")
                }
                #[cfg(not(target_arch = "aarch64"))]
                {
                    false
                }
            }
            CpuPath::Portable => true,
        }
    }

    /// Whether the path has SIMD kernels (every path but [`CpuPath::Portable`]); the packed
    /// GEMM and the inference kernels are used by default only on such a path.
    pub fn simd(self) -> bool {
        self != CpuPath::Portable
    }

    fn code(self) -> u8 {
        match self {
            CpuPath::Avx512 => 1,
            CpuPath::Avx2 => 2,
            CpuPath::Neon => 3,
            CpuPath::Portable => 4,
        }
    }

    fn from_code(c: u8) -> Option<CpuPath> {
        CpuPath::ALL.into_iter().find(|p| p.code() == c)
    }
}

impl fmt::Display for CpuPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CpuPath {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim().to_ascii_lowercase();
        CpuPath::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                ModelError::InvalidInput(format!(
                    "unknown CPU path `{s}` (known: avx512, avx2, neon, portable)"
                ))
            })
    }
}

/// The paths this CPU runs, fastest first (always ends with [`CpuPath::Portable`]).
pub fn available() -> Vec<CpuPath> {
    CpuPath::ALL.into_iter().filter(|p| p.available()).collect()
}

/// The fastest path this CPU runs.
pub fn best() -> CpuPath {
    available()[0]
}

/// 0 = not decided yet, else [`CpuPath::code`].
static CURRENT: AtomicU8 = AtomicU8::new(0);

/// The path the kernels run: `STEERLAB_CPU_PATH` (read once) where the CPU runs it, else
/// [`best`]; [`set_current`] overrides both. A value that is unknown or that this CPU cannot
/// run is reported once on stderr and ignored.
pub fn current() -> CpuPath {
    if let Some(p) = CpuPath::from_code(CURRENT.load(Ordering::Relaxed)) {
        return p;
    }
    let p = match super::switches::cpu_path_request() {
        None => best(),
        Some(v) => match resolve(&v) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("steerlab: STEERLAB_CPU_PATH ignored: {e}");
                best()
            }
        },
    };
    // A concurrent first call may have stored its own (identical) choice: keep the first.
    match CURRENT.compare_exchange(0, p.code(), Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => p,
        Err(c) => CpuPath::from_code(c).unwrap_or(p),
    }
}

/// Parses a path name and checks that this CPU runs it.
pub fn resolve(name: &str) -> Result<CpuPath> {
    let p: CpuPath = name.parse()?;
    if !p.available() {
        return Err(ModelError::InvalidInput(format!(
            "this CPU cannot run the {p} path (it runs: {})",
            names(&available())
        )));
    }
    Ok(p)
}

/// Forces `path` for the whole process (A/B measurements, tests of whole models). Errors,
/// changing nothing, where this CPU cannot run it.
pub fn set_current(path: CpuPath) -> Result<()> {
    if !path.available() {
        return Err(ModelError::InvalidInput(format!(
            "this CPU cannot run the {path} path (it runs: {})",
            names(&available())
        )));
    }
    CURRENT.store(path.code(), Ordering::Relaxed);
    Ok(())
}

fn names(paths: &[CpuPath]) -> String {
    paths
        .iter()
        .map(|p| p.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The SIMD features of this CPU that matter to the kernels, as their usual names (for
/// benchmark records): e.g. `"avx avx2 fma avx512f avx512bw avx512vl avx512vnni avx512bf16"`
/// (AMX is not probed: its detection is not in stable Rust; no kernel uses it).
pub fn cpu_features() -> String {
    let mut out: Vec<&str> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! probe {
            ($($f:tt),*) => {
                $(if is_x86_feature_detected!($f) { out.push($f); })*
            };
        }
        probe!(
            "avx",
            "avx2",
            "fma",
            "avx512f",
            "avx512bw",
            "avx512vl",
            "avx512vnni",
            "avx512bf16"
        );
    }
    #[cfg(target_arch = "aarch64")]
    {
        macro_rules! probe {
            ($($f:tt),*) => {
                $(if std::arch::is_aarch64_feature_detected!($f) { out.push($f); })*
            };
        }
        probe!("neon", "fp16", "dotprod", "bf16", "i8mm", "sve", "sve2");
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bad_names_are_errors() {
        for p in CpuPath::ALL {
            assert_eq!(p.name().parse::<CpuPath>().unwrap(), p);
            assert_eq!(p.to_string(), p.name());
        }
        assert_eq!(" AVX2 ".parse::<CpuPath>().unwrap(), CpuPath::Avx2);
        let e = "sse9".parse::<CpuPath>().unwrap_err().to_string();
        assert!(e.contains("unknown CPU path `sse9`"), "{e}");
    }

    #[test]
    fn portable_is_always_available_and_last() {
        let a = available();
        assert_eq!(a.last(), Some(&CpuPath::Portable));
        assert_eq!(best(), a[0]);
        assert!(resolve("portable").is_ok());
        // At most one of the two architectures' paths.
        assert!(!(CpuPath::Neon.available() && CpuPath::Avx2.available()));
        for p in CpuPath::ALL {
            if !p.available() {
                let e = set_current(p).unwrap_err().to_string();
                assert!(e.contains("cannot run"), "{e}");
                assert!(resolve(p.name()).is_err());
            }
        }
    }
}
