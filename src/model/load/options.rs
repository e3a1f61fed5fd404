//! Where and in which precision a model is loaded: [`LoadOptions`] and the parsers of the
//! user's `--device` / `--dtype` strings. Must not read model files.
use candle_core::{DType, Device};

use crate::model::{ModelError, Result};

/// Where and in which precision to load a model.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Device the weights live on.
    pub device: Device,
    /// Storage and compute dtype (norms and softmax always run in f32).
    pub dtype: DType,
    /// How a GGUF file's block-quantized tensors are held in memory.
    pub weights: WeightStorage,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            device: Device::Cpu,
            dtype: DType::F32,
            weights: WeightStorage::default(),
        }
    }
}

/// How a GGUF file's block-quantized tensors (Q4_0 … Q8_0, Q2_K … Q6_K) are held in memory.
/// Tensors stored as F32/F16/BF16 (and every tensor of a safetensors folder) are dense whatever
/// the choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightStorage {
    /// The default: [`WeightStorage::Quantized`] where it applies (a `.gguf` file loaded on the
    /// CPU in f32), [`WeightStorage::Dense`] elsewhere (CUDA, bf16/f16 models).
    #[default]
    Auto,
    /// Dequantized to the model dtype at load (4 bytes a weight in f32): what comparisons
    /// against an f32 reference (PyTorch, transformers) ask for explicitly.
    Dense,
    /// Kept block-quantized; linear layers, the LM head and embedding lookups
    /// use the quantized kernels (`model::fast::quant`), which agree with the dequantized
    /// weights up to float rounding. Only for f32 models on the CPU: elsewhere the tensors are
    /// dequantized as with [`WeightStorage::Dense`].
    Quantized,
}

impl WeightStorage {
    /// Parses `auto`, `quantized` (also `q`, `quant`) or `f32` (also `dense`, `dequantized`).
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "default" => Ok(Self::Auto),
            "quantized" | "quant" | "q" => Ok(Self::Quantized),
            "f32" | "dense" | "dequantized" => Ok(Self::Dense),
            other => Err(ModelError::InvalidInput(format!(
                "unknown weight storage `{other}` (use auto, quantized or f32)"
            ))),
        }
    }

    /// Whether a GGUF file's block-quantized tensors stay quantized for a model on `device` in
    /// `dtype` (the resolution of [`WeightStorage::Auto`]: yes on the CPU in f32).
    pub fn keeps_quantized(self, device: &Device, dtype: DType) -> bool {
        self != Self::Dense && device.is_cpu() && dtype == DType::F32
    }
}

impl LoadOptions {
    /// Parses user strings such as `("cuda:1", "bf16")`; see [`parse_device`] and [`parse_dtype`].
    pub fn parse(device: &str, dtype: &str) -> Result<Self> {
        Ok(Self {
            device: parse_device(device)?,
            dtype: parse_dtype(dtype)?,
            weights: WeightStorage::default(),
        })
    }
}

/// Parses `cpu`, `cuda` or `cuda:N`. CUDA needs a build with the `cuda` cargo feature.
pub fn parse_device(s: &str) -> Result<Device> {
    let s = s.trim().to_ascii_lowercase();
    if s == "cpu" {
        return Ok(Device::Cpu);
    }
    let ordinal = match s.as_str() {
        "cuda" | "gpu" => 0,
        _ => match s.strip_prefix("cuda:").map(|n| n.parse::<usize>()) {
            Some(Ok(n)) => n,
            _ => {
                return Err(ModelError::InvalidInput(format!(
                    "unknown device `{s}` (use cpu, cuda or cuda:N)"
                )))
            }
        },
    };
    cuda_device(ordinal)
}

#[cfg(feature = "cuda")]
fn cuda_device(ordinal: usize) -> Result<Device> {
    let dev = Device::new_cuda(ordinal)
        .map_err(|e| ModelError::InvalidInput(format!("cannot open CUDA device {ordinal}: {e}")))?;
    if !crate::model::fast::switches::cuda_pool_release() {
        keep_pool_memory(ordinal);
    }
    Ok(dev)
}

/// Keeps freed GPU memory in the device's stream-ordered pool across synchronisations (CUDA's
/// default release threshold of 0 hands it back to the driver at every synchronisation, so each
/// training step maps its working memory again). Best effort: a failure only costs speed.
/// `STEERLAB_CUDA_POOL_RELEASE=1` keeps CUDA's default.
#[cfg(feature = "cuda")]
fn keep_pool_memory(ordinal: usize) {
    use candle_core::cuda_backend::cudarc::driver::sys;
    let Ok(ordinal) = i32::try_from(ordinal) else {
        return;
    };
    // SAFETY: plain driver calls on the device just opened (so the driver is initialised);
    // `pool` and `threshold` outlive the calls that write or read them.
    unsafe {
        let mut dev: sys::CUdevice = 0;
        if sys::cuDeviceGet(&mut dev, ordinal) != sys::CUresult::CUDA_SUCCESS {
            return;
        }
        let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
        if sys::cuDeviceGetDefaultMemPool(&mut pool, dev) != sys::CUresult::CUDA_SUCCESS {
            return;
        }
        let mut threshold = u64::MAX;
        let _ = sys::cuMemPoolSetAttribute(
            pool,
            sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
            (&mut threshold as *mut u64).cast(),
        );
    }
}

#[cfg(not(feature = "cuda"))]
fn cuda_device(ordinal: usize) -> Result<Device> {
    Err(ModelError::InvalidInput(format!(
        "cuda:{ordinal} requested, but this steerlab was built without CUDA support \
         (rebuild with `--features cuda`)"
    )))
}

/// Parses `f32`, `bf16` or `f16`.
pub fn parse_dtype(s: &str) -> Result<DType> {
    match s.trim().to_ascii_lowercase().as_str() {
        "f32" | "float32" => Ok(DType::F32),
        "bf16" | "bfloat16" => Ok(DType::BF16),
        "f16" | "float16" | "half" => Ok(DType::F16),
        other => Err(ModelError::InvalidInput(format!(
            "unknown dtype `{other}` (use f32, bf16 or f16)"
        ))),
    }
}

/// A short name for a device (`cpu`, `cuda:0`, `metal:0`).
pub fn device_name(d: &Device) -> String {
    match d.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

/// A short name for a dtype (`f32`, `bf16`, ...).
pub fn dtype_name(d: DType) -> String {
    d.as_str().to_string()
}

/// The dtype used for compute given a requested storage dtype.
pub(crate) fn check_dtype(dtype: DType) -> Result<()> {
    match dtype {
        DType::F32 | DType::BF16 | DType::F16 | DType::F64 => Ok(()),
        other => Err(ModelError::InvalidInput(format!(
            "unsupported model dtype {other:?} (use f32, bf16 or f16)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default keeps blocks exactly where the quantized kernels run (CPU, f32); `f32`
    /// never does; every spelling parses to its variant and others are errors naming the choices.
    #[test]
    fn weight_storage_resolves_per_device_and_dtype() {
        let cpu = Device::Cpu;
        assert_eq!(WeightStorage::default(), WeightStorage::Auto);
        assert_eq!(LoadOptions::default().weights, WeightStorage::Auto);
        for (w, f32_cpu) in [
            (WeightStorage::Auto, true),
            (WeightStorage::Quantized, true),
            (WeightStorage::Dense, false),
        ] {
            assert_eq!(w.keeps_quantized(&cpu, DType::F32), f32_cpu, "{w:?}");
            assert!(!w.keeps_quantized(&cpu, DType::BF16), "{w:?} bf16");
            assert!(!w.keeps_quantized(&cpu, DType::F16), "{w:?} f16");
        }
        for (s, w) in [
            ("auto", WeightStorage::Auto),
            (" Quantized ", WeightStorage::Quantized),
            ("q", WeightStorage::Quantized),
            ("f32", WeightStorage::Dense),
            ("dense", WeightStorage::Dense),
        ] {
            assert_eq!(WeightStorage::parse(s).unwrap(), w, "{s}");
        }
        let e = WeightStorage::parse("q4").unwrap_err().to_string();
        assert!(
            e.contains("`q4`") && e.contains("auto, quantized or f32"),
            "{e}"
        );
    }
}
