//! Block-quantized weight matrices kept in their GGUF form ([`QMatrix`]: Q4_0, Q4_1, Q5_0,
//! Q5_1, Q8_0 and the K-quants Q2_K…Q6_K) and the CPU kernels that use them with f32
//! activations: the linear layer's forward `x Wᵀ` ([`QMatrix::matmul_t`]), its backward with
//! respect to the activations `dy W` ([`QMatrix::matmul`]: BiPO trains an added vector, never
//! the weights), both as one differentiable op ([`QMatrix::linear`]), and row lookups for
//! embeddings ([`QMatrix::rows`]).
//!
//! Every kernel dequantizes a tile of rows into a small f32 buffer and multiplies it in f32
//! (activations are never rounded to 8 bits), so results equal the dequantized model's up to
//! summation order; a whole matrix is never dequantized except by [`QMatrix::dequantize`]
//! (tests, fallbacks). Large products run each tile through the packed GEMM of `cpu_matmul`
//! (candle's per-block dequantizers); small ones (a generation step) a fused loop that
//! dequantizes one block at a time with this module's own dequantizers, compiled for the path
//! (bit-identical to candle's), and multiply-adds it straight into the dot products; on
//! x86-64 a single activation row (a generation step) goes through the explicit AVX-512/AVX2
//! kernels of `quant_dot` (one fused multiply-add per value, sums reordered, weights
//! prefetched ahead). Work is
//! split over candle's CPU pool. The GEMM tile, dot, axpy and fused loops are those of the
//! process's [`CpuPath`] (the `*_on` variants take one, for tests).
//! Must not know about models, files, hooks or autograd beyond its own op.
use std::borrow::Cow;
use std::sync::Arc;

use candle_core::quantized::k_quants::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K,
    BlockQ8_0,
};
use candle_core::quantized::{ggml_file::qtensor_from_ggml, GgmlDType, GgmlType, QTensor};
use candle_core::{CpuStorage, CustomOp1, Device, Layout, Shape, Tensor};

use super::cpu_matmul::{self, AlignedBuf, NR};
use super::cpu_path::{self, CpuPath};
#[cfg(target_arch = "x86_64")]
use super::quant_dot::{Avx2, Avx512, Simd, SimdDot};
use crate::model::{ModelError, Result};

/// The block types whose one-row products on x86-64 (AVX-512BW or AVX2) round the activations
/// to 16 bits per block of 32 (`quant_i16`; unless `STEERLAB_QUANT_I16=0`).
pub const ROUNDED_ONE_ROW: &[GgmlDType] = &[
    GgmlDType::Q8_0,
    GgmlDType::Q5_0,
    GgmlDType::Q4_0,
    GgmlDType::Q4_1,
    GgmlDType::Q4K,
    GgmlDType::Q6K,
];

/// The block types a [`QMatrix`] holds.
pub const SUPPORTED: &[GgmlDType] = &[
    GgmlDType::Q4_0,
    GgmlDType::Q4_1,
    GgmlDType::Q5_0,
    GgmlDType::Q5_1,
    GgmlDType::Q8_0,
    GgmlDType::Q2K,
    GgmlDType::Q3K,
    GgmlDType::Q4K,
    GgmlDType::Q5K,
    GgmlDType::Q6K,
];

/// Whether `dtype` is a block type a [`QMatrix`] holds.
pub fn supported(dtype: GgmlDType) -> bool {
    SUPPORTED.contains(&dtype)
}

/// Byte offsets of the f16 scales inside one block of `dtype` (GGML's block layouts: `d` first
/// in the legacy and Q4_K/Q5_K blocks, followed by `m`/`dmin` where present; last in Q2_K,
/// Q3_K and Q6_K).
fn scale_offsets(dtype: GgmlDType) -> Option<&'static [usize]> {
    Some(match dtype {
        GgmlDType::Q4_0 | GgmlDType::Q5_0 | GgmlDType::Q8_0 => &[0],
        GgmlDType::Q4_1 | GgmlDType::Q5_1 | GgmlDType::Q4K | GgmlDType::Q5K => &[0, 2],
        GgmlDType::Q2K => &[80, 82],
        GgmlDType::Q3K => &[108],
        GgmlDType::Q6K => &[208],
        _ => return None,
    })
}

/// Products with at least this many activation rows take the tiled GEMM path.
const GEMM_MIN_M: usize = 8;
/// Rows of `W` per work item of the small-`m` forward.
const DOT_ROWS: usize = 16;
/// Rows of `W` per work item of the many-row forward (four packed panels).
const GROUP_ROWS: usize = 4 * NR;

/// Runs `$body` with `$T` bound to the block type of `$dtype` (an error for others).
macro_rules! with_block {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            GgmlDType::Q4_0 => {
                type $T = BlockQ4_0;
                $body
            }
            GgmlDType::Q4_1 => {
                type $T = BlockQ4_1;
                $body
            }
            GgmlDType::Q5_0 => {
                type $T = BlockQ5_0;
                $body
            }
            GgmlDType::Q5_1 => {
                type $T = BlockQ5_1;
                $body
            }
            GgmlDType::Q8_0 => {
                type $T = BlockQ8_0;
                $body
            }
            GgmlDType::Q2K => {
                type $T = BlockQ2K;
                $body
            }
            GgmlDType::Q3K => {
                type $T = BlockQ3K;
                $body
            }
            GgmlDType::Q4K => {
                type $T = BlockQ4K;
                $body
            }
            GgmlDType::Q5K => {
                type $T = BlockQ5K;
                $body
            }
            GgmlDType::Q6K => {
                type $T = BlockQ6K;
                $body
            }
            other => Err(ModelError::InvalidInput(format!(
                "quantized weights: block type {other:?} is not supported (supported: {SUPPORTED:?})"
            ))),
        }
    };
}

/// A frozen weight `W` `[rows, cols]` (rows = output features) in a GGUF block format, on the
/// CPU. Cheap to clone (shared).
#[derive(Clone)]
pub struct QMatrix {
    qt: Arc<QTensor>,
    rows: usize,
    cols: usize,
}

impl std::fmt::Debug for QMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "QMatrix({:?}, [{}, {}])",
            self.dtype(),
            self.rows,
            self.cols
        )
    }
}

impl QMatrix {
    /// Wraps a 2-D CPU [`QTensor`] of a [`SUPPORTED`] block type whose rows are whole blocks.
    pub fn from_qtensor(qt: QTensor) -> Result<Self> {
        let dtype = qt.dtype();
        if !supported(dtype) {
            return Err(ModelError::InvalidInput(format!(
                "quantized weights: block type {dtype:?} is not supported (supported: {SUPPORTED:?})"
            )));
        }
        let (rows, cols) = qt.shape().dims2().map_err(|_| {
            ModelError::InvalidInput(format!(
                "quantized weights: expected a matrix, got shape {:?}",
                qt.shape().dims()
            ))
        })?;
        if !cols.is_multiple_of(dtype.block_size()) {
            return Err(ModelError::InvalidInput(format!(
                "quantized weights: rows of {cols} values are not whole {dtype:?} blocks of {}",
                dtype.block_size()
            )));
        }
        if !qt.device().is_cpu() {
            return Err(ModelError::InvalidInput(
                "quantized weights: only CPU tensors are supported".into(),
            ));
        }
        Ok(Self {
            qt: Arc::new(qt),
            rows,
            cols,
        })
    }

    /// A matrix from its raw GGUF bytes (`rows * cols / block_size` blocks, row-major).
    pub fn from_bytes(dtype: GgmlDType, bytes: &[u8], rows: usize, cols: usize) -> Result<Self> {
        let bs = dtype.block_size();
        let want = rows
            .checked_mul(cols / bs.max(1))
            .and_then(|b| b.checked_mul(dtype.type_size()));
        if !cols.is_multiple_of(bs) || want != Some(bytes.len()) {
            return Err(ModelError::InvalidInput(format!(
                "quantized weights: {} bytes do not hold [{rows}, {cols}] in {dtype:?}",
                bytes.len()
            )));
        }
        let qt = qtensor_from_ggml(dtype, bytes, vec![rows, cols], &Device::Cpu)?;
        Self::from_qtensor(qt)
    }

    /// Reads a `[rows, cols]` matrix of `dtype` stored at byte `offset` of `reader` (a GGUF
    /// tensor) straight into its block storage: one copy of the bytes in memory, where reading
    /// through candle (`Content::tensor`) holds the raw bytes and the block vector at once.
    pub fn read_from<R: std::io::Read + std::io::Seek>(
        reader: &mut R,
        offset: u64,
        dtype: GgmlDType,
        rows: usize,
        cols: usize,
    ) -> Result<Self> {
        if !supported(dtype) || !cols.is_multiple_of(dtype.block_size()) {
            return Err(ModelError::InvalidInput(format!(
                "quantized weights: cannot hold rows of {cols} values as {dtype:?}"
            )));
        }
        let n_blocks = rows
            .checked_mul(cols / dtype.block_size())
            .ok_or_else(|| ModelError::InvalidInput(format!("[{rows}, {cols}] overflows")))?;
        let io = |e: std::io::Error| {
            ModelError::InvalidInput(format!(
                "reading {n_blocks} {dtype:?} blocks at byte {offset}: {e}"
            ))
        };
        reader.seek(std::io::SeekFrom::Start(offset)).map_err(io)?;
        let storage = with_block!(dtype, T => {
            // SAFETY: block structs are plain data (floats and integers) without padding, valid
            // for the all-zero bit pattern.
            let mut v: Vec<T> = vec![unsafe { std::mem::zeroed::<T>() }; n_blocks];
            // SAFETY: the vector's initialised elements viewed as their bytes; any bytes read
            // into them form valid blocks (plain data).
            let bytes = unsafe {
                std::slice::from_raw_parts_mut(
                    v.as_mut_ptr().cast::<u8>(),
                    n_blocks * std::mem::size_of::<T>(),
                )
            };
            reader.read_exact(bytes).map_err(io)?;
            Ok(candle_core::quantized::QStorage::Cpu(Box::new(v)))
        })?;
        Self::from_qtensor(QTensor::new(storage, (rows, cols))?)
    }

    /// Quantizes a matrix `[rows, cols]` made `chunk` rows at a time by `make(first_row,
    /// n_rows)` (returning `n_rows * cols` floats), so that the f32 matrix never exists whole.
    pub fn quantize_by_rows(
        dtype: GgmlDType,
        rows: usize,
        cols: usize,
        chunk: usize,
        mut make: impl FnMut(usize, usize) -> Result<Vec<f32>>,
    ) -> Result<Self> {
        if !supported(dtype) || !cols.is_multiple_of(dtype.block_size()) {
            return Err(ModelError::InvalidInput(format!(
                "quantized weights: cannot quantize rows of {cols} values to {dtype:?}"
            )));
        }
        let row_bytes = cols / dtype.block_size() * dtype.type_size();
        let mut bytes = Vec::with_capacity(rows * row_bytes);
        let mut r = 0;
        while r < rows {
            let n = chunk.max(1).min(rows - r);
            let vals = make(r, n)?;
            if vals.len() != n * cols {
                return Err(ModelError::InvalidInput(format!(
                    "quantized weights: {} values made for {n} rows of {cols}",
                    vals.len()
                )));
            }
            let t = Tensor::from_vec(vals, (n, cols), &Device::Cpu)?;
            let q = QTensor::quantize(&t, dtype)?;
            bytes.extend_from_slice(&q.data()?);
            r += n;
        }
        Self::from_bytes(dtype, &bytes, rows, cols)
    }

    /// The block type.
    pub fn dtype(&self) -> GgmlDType {
        self.qt.dtype()
    }

    /// `(rows, cols)`: output and input features.
    pub fn dims(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Bytes of quantized data.
    pub fn size_in_bytes(&self) -> usize {
        self.qt.storage_size_in_bytes()
    }

    /// The raw GGUF bytes (row-major blocks).
    pub fn bytes(&self) -> Result<Cow<'_, [u8]>> {
        Ok(self.qt.data()?)
    }

    /// The matrix with its rows reordered: row `i` of the result is row `perm[i]` of `self`
    /// (blocks are copied as they are, nothing is requantized).
    pub fn permute_rows(&self, perm: &[usize]) -> Result<Self> {
        if perm.len() != self.rows || perm.iter().any(|&p| p >= self.rows) {
            return Err(ModelError::InvalidInput(format!(
                "quantized weights: a row permutation of {} entries for {} rows",
                perm.len(),
                self.rows
            )));
        }
        let data = self.bytes()?;
        let rb = data.len() / self.rows.max(1);
        let mut out = Vec::with_capacity(data.len());
        for &p in perm {
            out.extend_from_slice(&data[p * rb..(p + 1) * rb]);
        }
        Self::from_bytes(self.dtype(), &out, self.rows, self.cols)
    }

    /// The matrix of rows `rows` of `self`, in that order (a slice of a fused matrix; blocks
    /// are copied as they are, nothing is requantized).
    pub fn take_rows(&self, rows: &[usize]) -> Result<Self> {
        if rows.is_empty() || rows.iter().any(|&p| p >= self.rows) {
            return Err(ModelError::InvalidInput(format!(
                "quantized weights: rows {rows:?} of a matrix of {} rows",
                self.rows
            )));
        }
        let data = self.bytes()?;
        let rb = data.len() / self.rows.max(1);
        let mut out = Vec::with_capacity(rows.len() * rb);
        for &p in rows {
            out.extend_from_slice(&data[p * rb..(p + 1) * rb]);
        }
        Self::from_bytes(self.dtype(), &out, rows.len(), self.cols)
    }

    /// The first block whose scale (a GGML block's f16 `d`, and `m`/`dmin` where it has one)
    /// is NaN or infinite, if any. Every other field of a block is a small integer, so the
    /// matrix dequantizes to finite values exactly when this is `None`; it reads 2–4 bytes per
    /// block instead of dequantizing the whole matrix.
    pub fn first_nonfinite_block(&self) -> Result<Option<usize>> {
        let dtype = self.dtype();
        let offsets = scale_offsets(dtype).ok_or_else(|| {
            ModelError::InvalidInput(format!(
                "quantized weights: block type {dtype:?} is not supported"
            ))
        })?;
        let size = dtype.type_size();
        let data = self.bytes()?;
        Ok(data.chunks_exact(size).position(|block| {
            offsets.iter().any(|&o| {
                let h = u16::from_le_bytes([block[o], block[o + 1]]);
                // f16: an all-ones exponent is an infinity or a NaN.
                h & 0x7c00 == 0x7c00
            })
        }))
    }

    /// The whole matrix as an f32 tensor (tests and fallbacks only: 4 bytes per weight).
    pub fn dequantize(&self) -> Result<Tensor> {
        Ok(self.qt.dequantize(&Device::Cpu)?)
    }

    /// Rows `ids` dequantized: `[ids.len(), cols]` f32 (an embedding lookup).
    pub fn rows(&self, ids: &[u32]) -> Result<Tensor> {
        let cols = self.cols;
        let mut out = vec![0f32; ids.len() * cols];
        with_block!(self.dtype(), T => {
            let blocks = self.blocks::<T>()?;
            let bpr = cols / T::BLCK_SIZE;
            for (o, &id) in out.chunks_exact_mut(cols.max(1)).zip(ids) {
                let id = id as usize;
                if id >= self.rows {
                    return Err(ModelError::InvalidInput(format!(
                        "token id {id} is outside the embedding's {} rows",
                        self.rows
                    )));
                }
                T::to_float(&blocks[id * bpr..(id + 1) * bpr], o);
            }
            Ok(())
        })?;
        Ok(Tensor::from_vec(out, (ids.len(), cols), &Device::Cpu)?)
    }

    /// The blocks as their typed slice.
    fn blocks<T: GgmlType>(&self) -> Result<&[T]> {
        debug_assert_eq!(T::DTYPE, self.dtype());
        let Cow::Borrowed(bytes) = self.qt.data()? else {
            return Err(ModelError::InvalidInput(
                "quantized weights: not in CPU memory".into(),
            ));
        };
        // SAFETY: the bytes are the storage of candle's `Vec<T>` of this block type (checked
        // above), so they are aligned for `T` and a whole number of `T`s; block structs are
        // plain data (floats and integers), valid for any bit pattern.
        let (pre, mid, post) = unsafe { bytes.align_to::<T>() };
        if !pre.is_empty() || !post.is_empty() || mid.len() * T::BLCK_SIZE != self.rows * self.cols
        {
            return Err(ModelError::InvalidInput(
                "quantized weights: storage is not a whole number of aligned blocks".into(),
            ));
        }
        Ok(mid)
    }

    /// `out[m, rows] = x[m, cols] Wᵀ` for row-major `x` and `out`.
    pub fn matmul_t(&self, x: &[f32], m: usize, out: &mut [f32]) -> Result<()> {
        self.matmul_t_on(cpu_path::current(), x, m, out)
    }

    /// [`QMatrix::matmul_t`] on `path` (tests and A/B measurements); errors if this CPU cannot
    /// run it.
    pub fn matmul_t_on(&self, path: CpuPath, x: &[f32], m: usize, out: &mut [f32]) -> Result<()> {
        check_path(path)?;
        let (n, k) = (self.rows, self.cols);
        if x.len() != m * k || out.len() != m * n {
            return Err(ModelError::InvalidInput(format!(
                "quantized matmul: x has {} values and out {}, expected {m} x {k} and {m} x {n}",
                x.len(),
                out.len()
            )));
        }
        if m == 0 || n == 0 {
            return Ok(());
        }
        #[cfg(target_arch = "x86_64")]
        if m == 1 && self.fwd_i16(path, x, out)? {
            return Ok(());
        }
        with_block!(self.dtype(), T => {
            let blocks = self.blocks::<T>()?;
            if m >= GEMM_MIN_M {
                fwd_tiled(path, blocks, n, k, x, m, out);
            } else {
                fwd_fused(path, blocks, n, k, x, m, out);
            }
            Ok(())
        })
    }

    /// One activation row on the 16-bit-activation kernels of `quant_i16`, where they apply
    /// (Q8_0, Q5_0, Q4_0, Q4_1, Q4_K or Q6_K weights, the AVX-512BW or AVX2 path, `STEERLAB_QUANT_I16` on, `x`
    /// finite): `Ok(true)` when `out` was written.
    #[cfg(target_arch = "x86_64")]
    fn fwd_i16(&self, path: CpuPath, x: &[f32], out: &mut [f32]) -> Result<bool> {
        use super::quant_i16::XI16;
        let wide = match path {
            CpuPath::Avx512 => is_x86_feature_detected!("avx512bw"),
            CpuPath::Avx2 => false,
            _ => return Ok(false),
        };
        let dtype = self.dtype();
        if !ROUNDED_ONE_ROW.contains(&dtype) || !super::switches::QUANT_I16.get() {
            return Ok(false);
        }
        let Some(xq) = XI16::new(x) else {
            return Ok(false);
        };
        let (n, k) = (self.rows, self.cols);
        match dtype {
            GgmlDType::Q8_0 => fwd_i16_rows(wide, self.blocks::<BlockQ8_0>()?, n, k, &xq, out),
            GgmlDType::Q5_0 => fwd_i16_rows(wide, self.blocks::<BlockQ5_0>()?, n, k, &xq, out),
            GgmlDType::Q4_0 => fwd_i16_rows(wide, self.blocks::<BlockQ4_0>()?, n, k, &xq, out),
            GgmlDType::Q4_1 => fwd_i16_rows(wide, self.blocks::<BlockQ4_1>()?, n, k, &xq, out),
            GgmlDType::Q4K => fwd_i16_rows(wide, self.blocks::<BlockQ4K>()?, n, k, &xq, out),
            _ => fwd_i16_rows(wide, self.blocks::<BlockQ6K>()?, n, k, &xq, out),
        }
        Ok(true)
    }

    /// The small-`m` forward as it was before the fused kernel (each row of `W` dequantized by
    /// candle's scalar dequantizer into a buffer, then dotted): the baseline of
    /// `examples/quant_matmul.rs`, nothing else.
    #[doc(hidden)]
    pub fn matmul_t_rowwise_on(
        &self,
        path: CpuPath,
        x: &[f32],
        m: usize,
        out: &mut [f32],
    ) -> Result<()> {
        check_path(path)?;
        let (n, k) = (self.rows, self.cols);
        if x.len() != m * k || out.len() != m * n {
            return Err(ModelError::InvalidInput(format!(
                "quantized matmul: x has {} values and out {}, expected {m} x {k} and {m} x {n}",
                x.len(),
                out.len()
            )));
        }
        with_block!(self.dtype(), T => {
            fwd_dot(path, self.blocks::<T>()?, n, k, x, m, out);
            Ok(())
        })
    }

    /// `out[m, cols] = dy[m, rows] W` for row-major `dy` and `out`: the gradient of
    /// [`QMatrix::matmul_t`] with respect to its input.
    pub fn matmul(&self, dy: &[f32], m: usize, out: &mut [f32]) -> Result<()> {
        self.matmul_on(cpu_path::current(), dy, m, out)
    }

    /// [`QMatrix::matmul`] on `path` (tests and A/B measurements); errors if this CPU cannot
    /// run it.
    pub fn matmul_on(&self, path: CpuPath, dy: &[f32], m: usize, out: &mut [f32]) -> Result<()> {
        check_path(path)?;
        let (n, k) = (self.rows, self.cols);
        if dy.len() != m * n || out.len() != m * k {
            return Err(ModelError::InvalidInput(format!(
                "quantized matmul: dy has {} values and out {}, expected {m} x {n} and {m} x {k}",
                dy.len(),
                out.len()
            )));
        }
        out.fill(0.0);
        if m == 0 || k == 0 {
            return Ok(());
        }
        with_block!(self.dtype(), T => {
            let blocks = self.blocks::<T>()?;
            if m >= GEMM_MIN_M {
                bwd_tiled(path, blocks, n, k, dy, m, out);
            } else {
                bwd_axpy(path, blocks, n, k, dy, m, out);
            }
            Ok(())
        })
    }

    /// `x Wᵀ` for an f32 CPU tensor `[..., cols]`, without gradient.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (xs, m, mut dims) = rows_of(x, self.cols, "input")?;
        let mut out = vec![0f32; m * self.rows];
        self.matmul_t(&xs, m, &mut out)?;
        dims.push(self.rows);
        Ok(Tensor::from_vec(out, dims, &Device::Cpu)?)
    }

    /// `dy W` for an f32 CPU tensor `[..., rows]`: `[..., cols]`, without gradient.
    pub fn backward_input(&self, dy: &Tensor) -> Result<Tensor> {
        let (ds, m, mut dims) = rows_of(dy, self.rows, "gradient")?;
        let mut out = vec![0f32; m * self.cols];
        self.matmul(&ds, m, &mut out)?;
        dims.push(self.cols);
        Ok(Tensor::from_vec(out, dims, &Device::Cpu)?)
    }

    /// `x Wᵀ` as a differentiable op: gradients flow to `x` (by [`QMatrix::matmul`]), never to
    /// the frozen weight. `x` is f32 on the CPU.
    pub fn linear(&self, x: &Tensor) -> Result<Tensor> {
        if !x.track_op() {
            return self.forward(x);
        }
        Ok(x.contiguous()?.apply_op1(QLinearOp(self.clone()))?)
    }
}

/// Errors unless this CPU runs `path`.
fn check_path(path: CpuPath) -> Result<()> {
    if path.available() {
        Ok(())
    } else {
        Err(ModelError::InvalidInput(format!(
            "quantized matmul: this CPU cannot run the {path} path"
        )))
    }
}

/// The values of an f32 CPU tensor `[..., last]` as `m` rows (copied), with its leading dims.
fn rows_of(x: &Tensor, last: usize, what: &str) -> Result<(Vec<f32>, usize, Vec<usize>)> {
    let dims = x.dims().to_vec();
    if dims.last() != Some(&last) || x.dtype() != candle_core::DType::F32 || !x.device().is_cpu() {
        return Err(ModelError::InvalidInput(format!(
            "quantized matmul: {what} must be f32 on the CPU with last dimension {last}, got {:?} {:?}",
            x.dtype(),
            dims
        )));
    }
    let m = dims[..dims.len() - 1].iter().product();
    let v = x.flatten_all()?.to_vec1::<f32>()?;
    Ok((v, m, dims[..dims.len() - 1].to_vec()))
}

/// Splits `n_items` over candle's CPU pool (inline when small).
fn par(n_items: usize, work: usize, f: impl Fn(std::ops::Range<usize>) + Sync) {
    if work < (1 << 18) || n_items < 2 {
        f(0..n_items);
    } else {
        candle_core::utils::barrier_pool().execute_chunked(n_items, f);
    }
}

/// A raw output pointer shared by the pool's threads, each writing its own elements.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: only used for disjoint writes while the owning slice is borrowed by the caller.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The pointer (a method, so closures capture the whole `Sync` wrapper).
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Forward for few rows: each work item dequantizes [`DOT_ROWS`] rows of `W` one at a time
/// and dots them with every row of `x`.
fn fwd_dot<T: GgmlType>(
    path: CpuPath,
    w: &[T],
    n: usize,
    k: usize,
    x: &[f32],
    m: usize,
    out: &mut [f32],
) {
    let bpr = k / T::BLCK_SIZE;
    let op = OutPtr(out.as_mut_ptr());
    let items = n.div_ceil(DOT_ROWS);
    par(items, n * k * m, |range| {
        let mut row = vec![0f32; k];
        for item in range {
            for r in item * DOT_ROWS..n.min(item * DOT_ROWS + DOT_ROWS) {
                T::to_float(&w[r * bpr..(r + 1) * bpr], &mut row);
                for i in 0..m {
                    let v = dot(path, &x[i * k..(i + 1) * k], &row);
                    // SAFETY: (i, r) is written only by the item owning row r; in bounds.
                    unsafe { *op.get().add(i * n + r) = v };
                }
            }
        }
    });
}

/// Forward for one row of `x` (rounded to 16 bits, [`super::quant_i16`]): each work item
/// dots [`DOT_ROWS`] rows of `W` with it.
#[cfg(target_arch = "x86_64")]
fn fwd_i16_rows<T: super::quant_i16::DotI16 + GgmlType + Sync>(
    wide: bool,
    w: &[T],
    n: usize,
    k: usize,
    x: &super::quant_i16::XI16,
    out: &mut [f32],
) {
    let bpr = k / T::BLCK_SIZE;
    let op = OutPtr(out.as_mut_ptr());
    par(n.div_ceil(DOT_ROWS), n * k, |range| {
        for item in range {
            for r in item * DOT_ROWS..n.min(item * DOT_ROWS + DOT_ROWS) {
                let row = &w[r * bpr..(r + 1) * bpr];
                // SAFETY: the caller checked the path's features (AVX-512BW for `wide`); `x`
                // covers k values.
                let mut v = unsafe {
                    if wide {
                        T::dot_avx512(row, x)
                    } else {
                        T::dot_avx2(row, x)
                    }
                };
                for &(c, xc) in &x.outliers {
                    // SAFETY: outlier columns are below k, the row's length.
                    v += unsafe { T::value(row, c) } * xc;
                }
                // SAFETY: row r is written only by the item owning it; in bounds.
                unsafe { *op.get().add(r) = v };
            }
        }
    });
}

/// Forward for few rows (a generation step): each work item walks [`DOT_ROWS`] rows of `W`
/// block by block, dequantizes each block with [`Dequant`] (compiled for `path`, unlike
/// candle's) into a small buffer and accumulates its products with up to four rows of `x` in
/// 32 f32 lanes; no row buffer, no second pass over the weights.
fn fwd_fused<T: Dequant>(
    path: CpuPath,
    w: &[T],
    n: usize,
    k: usize,
    x: &[f32],
    m: usize,
    out: &mut [f32],
) {
    let bpr = k / T::BLCK_SIZE;
    let op = OutPtr(out.as_mut_ptr());
    par(n.div_ceil(DOT_ROWS), n * k * m, |range| {
        for item in range {
            for r in item * DOT_ROWS..n.min(item * DOT_ROWS + DOT_ROWS) {
                let row = &w[r * bpr..(r + 1) * bpr];
                let mut i = 0;
                while i < m {
                    let g = if m - i >= 4 { 4 } else { 1 };
                    let mut sums = [0f32; 4];
                    fused_dots(path, row, &x[i * k..(i + g) * k], k, &mut sums[..g]);
                    for (j, v) in sums[..g].iter().enumerate() {
                        // SAFETY: (i + j, r) is written only by the item owning row r; in bounds.
                        unsafe { *op.get().add((i + j) * n + r) = *v };
                    }
                    i += g;
                }
            }
        }
    });
}

/// `sums[g] = Σ_c row[c] x[g k + c]` for one quantized row and `sums.len()` (1 or 4) rows of
/// `x`, compiled for `path`.
#[inline]
fn fused_dots<T: Dequant>(path: CpuPath, row: &[T], x: &[f32], k: usize, sums: &mut [f32]) {
    match (path, sums.len()) {
        // SAFETY: the path's features are available (the caller checked the path).
        #[cfg(target_arch = "x86_64")]
        (CpuPath::Avx512, 4) => unsafe { fused_avx512::<T, 4>(row, x, k, sums) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        (CpuPath::Avx512, _) => sums[0] = unsafe { qdot_avx512(row, &x[..k]) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        (CpuPath::Avx2, 4) => unsafe { fused_avx2::<T, 4>(row, x, k, sums) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        (CpuPath::Avx2, _) => sums[0] = unsafe { qdot_avx2(row, &x[..k]) },
        // NEON and FMA are part of the aarch64 baseline.
        (CpuPath::Neon, 4) => fused_lanes::<T, true, 4>(row, x, k, sums),
        (CpuPath::Neon, _) => fused_lanes::<T, true, 1>(row, x, k, sums),
        (_, 4) => fused_lanes::<T, false, 4>(row, x, k, sums),
        _ => fused_lanes::<T, false, 1>(row, x, k, sums),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn fused_avx512<T: Dequant, const G: usize>(
    row: &[T],
    x: &[f32],
    k: usize,
    sums: &mut [f32],
) {
    fused_lanes::<T, true, G>(row, x, k, sums)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn fused_avx2<T: Dequant, const G: usize>(row: &[T], x: &[f32], k: usize, sums: &mut [f32]) {
    fused_lanes::<T, true, G>(row, x, k, sums)
}

/// One row of `x` on AVX-512: [`Dequant::dot_simd`] (explicit SIMD for the common block types).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn qdot_avx512<T: Dequant>(row: &[T], x: &[f32]) -> f32 {
    T::dot_simd::<Avx512>(row, x)
}

/// One row of `x` on AVX2: [`Dequant::dot_simd`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn qdot_avx2<T: Dequant>(row: &[T], x: &[f32]) -> f32 {
    T::dot_simd::<Avx2>(row, x)
}

/// The body of [`fused_dots`] for `G` rows of `x`: 32 independent lanes per row (two AVX-512
/// or four AVX2 accumulators, so the multiply-add chains overlap).
#[inline(always)]
fn fused_lanes<T: Dequant, const FMA: bool, const G: usize>(
    row: &[T],
    x: &[f32],
    k: usize,
    sums: &mut [f32],
) {
    let bs = T::BLCK_SIZE;
    let mut buf = [0f32; 256];
    let mut acc = [[0f32; 32]; G];
    for (b, blk) in row.iter().enumerate() {
        let vals = &mut buf[..bs];
        T::dequant(blk, vals);
        for (g, a) in acc.iter_mut().enumerate() {
            let xs = &x[g * k + b * bs..g * k + (b + 1) * bs];
            for (v, xx) in vals.chunks_exact(32).zip(xs.chunks_exact(32)) {
                for ((s, v), xx) in a.iter_mut().zip(v).zip(xx) {
                    *s = if FMA { v.mul_add(*xx, *s) } else { *s + v * xx };
                }
            }
        }
    }
    for (s, a) in sums.iter_mut().zip(&acc) {
        *s = a.iter().sum();
    }
}

/// A block dequantizer that inlines into the fused kernel (candle's `to_float` is compiled in
/// candle for the build's baseline and is not inlined across crates). Same arithmetic as
/// candle's, so the values are bit-identical (tested below); Q2_K and Q3_K use candle's.
trait Dequant: GgmlType {
    /// Writes the block's `BLCK_SIZE` values to `out`.
    fn dequant(b: &Self, out: &mut [f32]);

    /// `Σ row[c] x[c]` for one row of `x` (`x.len()` = the row's values) with `S`'s vectors,
    /// whose instruction set the caller enables: the explicit kernels of `quant_dot` for the
    /// block types that have one, else the generic fused loop.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn dot_simd<S: Simd>(row: &[Self], x: &[f32]) -> f32 {
        let mut s = [0f32];
        fused_lanes::<Self, true, 1>(row, x, x.len(), &mut s);
        s[0]
    }
}

/// [`Dequant::dot_simd`] by the explicit kernel of `quant_dot` (x86-64; elsewhere nothing).
#[cfg(target_arch = "x86_64")]
macro_rules! simd_dot {
    () => {
        #[inline(always)]
        unsafe fn dot_simd<S: Simd>(row: &[Self], x: &[f32]) -> f32 {
            <Self as SimdDot>::dot::<S>(row, x)
        }
    };
}
#[cfg(not(target_arch = "x86_64"))]
macro_rules! simd_dot {
    () => {};
}

/// The bytes of one block (candle's block structs are `repr(C)` plain data without padding).
#[inline(always)]
fn block_bytes<T>(b: &T) -> &[u8] {
    // SAFETY: `b` is a live `T`; reading its `size_of::<T>()` bytes is in bounds, and block
    // structs have no padding (candle asserts their sizes equal the sum of their fields).
    unsafe { std::slice::from_raw_parts((b as *const T).cast::<u8>(), std::mem::size_of::<T>()) }
}

/// The little-endian f16 at byte `o`, as f32.
#[inline(always)]
fn f16_at(b: &[u8], o: usize) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([b[o], b[o + 1]])).to_f32()
}

/// The 6-bit scale and min of sub-block `j` of a Q4_K/Q5_K block's 12 packed scale bytes.
#[inline(always)]
fn k4_scale_min(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

impl Dequant for BlockQ4_0 {
    simd_dot!();

    #[inline(always)]
    fn dequant(b: &Self, out: &mut [f32]) {
        let b = block_bytes(b);
        let (d, qs) = (f16_at(b, 0), &b[2..18]);
        let (lo, hi) = out[..32].split_at_mut(16);
        for ((q, l), h) in qs.iter().zip(lo).zip(hi) {
            *l = ((q & 0xf) as i16 - 8) as f32 * d;
            *h = ((q >> 4) as i16 - 8) as f32 * d;
        }
    }
}

impl Dequant for BlockQ4_1 {
    simd_dot!();

    #[inline(always)]
    fn dequant(b: &Self, out: &mut [f32]) {
        let b = block_bytes(b);
        let (d, m, qs) = (f16_at(b, 0), f16_at(b, 2), &b[4..20]);
        let (lo, hi) = out[..32].split_at_mut(16);
        for ((q, l), h) in qs.iter().zip(lo).zip(hi) {
            *l = (q & 0xf) as f32 * d + m;
            *h = (q >> 4) as f32 * d + m;
        }
    }
}

impl Dequant for BlockQ5_0 {
    simd_dot!();

    #[inline(always)]
    fn dequant(b: &Self, out: &mut [f32]) {
        let b = block_bytes(b);
        let d = f16_at(b, 0);
        let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
        let qs = &b[6..22];
        let (lo, hi) = out[..32].split_at_mut(16);
        for (j, ((q, l), h)) in qs.iter().zip(lo).zip(hi).enumerate() {
            let h0 = ((qh >> j) << 4) & 0x10;
            let h1 = (qh >> (j + 12)) & 0x10;
            *l = (((q & 0xf) as u32 | h0) as i32 - 16) as f32 * d;
            *h = (((q >> 4) as u32 | h1) as i32 - 16) as f32 * d;
        }
    }
}

impl Dequant for BlockQ5_1 {
    #[inline(always)]
    fn dequant(b: &Self, out: &mut [f32]) {
        let b = block_bytes(b);
        let (d, m) = (f16_at(b, 0), f16_at(b, 2));
        let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        let qs = &b[8..24];
        let (lo, hi) = out[..32].split_at_mut(16);
        for (j, ((q, l), h)) in qs.iter().zip(lo).zip(hi).enumerate() {
            let h0 = ((qh >> j) << 4) & 0x10;
            let h1 = (qh >> (j + 12)) & 0x10;
            *l = ((q & 0xf) as u32 | h0) as f32 * d + m;
            *h = ((q >> 4) as u32 | h1) as f32 * d + m;
        }
    }
}

impl Dequant for BlockQ8_0 {
    simd_dot!();

    #[inline(always)]
    fn dequant(b: &Self, out: &mut [f32]) {
        let b = block_bytes(b);
        let d = f16_at(b, 0);
        for (q, o) in b[2..34].iter().zip(&mut out[..32]) {
            *o = (*q as i8) as f32 * d;
        }
    }
}

impl Dequant for BlockQ4K {
    simd_dot!();

    #[inline(always)]
    fn dequant(b: &Self, out: &mut [f32]) {
        let b = block_bytes(b);
        let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
        let (scales, qs) = (&b[4..16], &b[16..144]);
        for (c, (q, o)) in qs
            .chunks_exact(32)
            .zip(out.chunks_exact_mut(64))
            .enumerate()
        {
            let (s1, m1) = k4_scale_min(2 * c, scales);
            let (s2, m2) = k4_scale_min(2 * c + 1, scales);
            let (d1, m1) = (d * s1 as f32, dmin * m1 as f32);
            let (d2, m2) = (d * s2 as f32, dmin * m2 as f32);
            let (lo, hi) = o.split_at_mut(32);
            for ((q, l), h) in q.iter().zip(lo).zip(hi) {
                *l = d1 * (q & 0xf) as f32 - m1;
                *h = d2 * (q >> 4) as f32 - m2;
            }
        }
    }
}

impl Dequant for BlockQ5K {
    #[inline(always)]
    fn dequant(b: &Self, out: &mut [f32]) {
        let b = block_bytes(b);
        let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
        let (scales, qh, qs) = (&b[4..16], &b[16..48], &b[48..176]);
        for (c, (q, o)) in qs
            .chunks_exact(32)
            .zip(out.chunks_exact_mut(64))
            .enumerate()
        {
            let (s1, m1) = k4_scale_min(2 * c, scales);
            let (s2, m2) = k4_scale_min(2 * c + 1, scales);
            let (d1, m1) = (d * s1 as f32, dmin * m1 as f32);
            let (d2, m2) = (d * s2 as f32, dmin * m2 as f32);
            let (u1, u2) = (1u8 << (2 * c), 2u8 << (2 * c));
            let (lo, hi) = o.split_at_mut(32);
            for (((q, h), l), hh) in q.iter().zip(qh).zip(lo).zip(hi) {
                let b1 = if h & u1 != 0 { 16 } else { 0 };
                let b2 = if h & u2 != 0 { 16 } else { 0 };
                *l = d1 * ((q & 0xf) + b1) as f32 - m1;
                *hh = d2 * ((q >> 4) + b2) as f32 - m2;
            }
        }
    }
}

impl Dequant for BlockQ6K {
    simd_dot!();

    #[inline(always)]
    fn dequant(b: &Self, out: &mut [f32]) {
        let b = block_bytes(b);
        let d = f16_at(b, 208);
        for half in 0..2 {
            let ql = &b[64 * half..64 * half + 64];
            let qh = &b[128 + 32 * half..128 + 32 * half + 32];
            let sc = &b[192 + 8 * half..192 + 8 * half + 8];
            let o = &mut out[128 * half..128 * half + 128];
            for l in 0..32 {
                let is = l / 16;
                let q1 = ((ql[l] & 0xf) | ((qh[l] & 3) << 4)) as i8 - 32;
                let q2 = ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
                let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
                let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
                o[l] = d * (sc[is] as i8) as f32 * q1 as f32;
                o[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
                o[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
                o[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
            }
        }
    }
}

impl Dequant for BlockQ2K {
    #[inline(always)]
    fn dequant(b: &Self, out: &mut [f32]) {
        Self::to_float(std::slice::from_ref(b), out);
    }
}

impl Dequant for BlockQ3K {
    #[inline(always)]
    fn dequant(b: &Self, out: &mut [f32]) {
        Self::to_float(std::slice::from_ref(b), out);
    }
}

/// Forward for many rows: each work item dequantizes [`GROUP_ROWS`] rows of `W` straight into
/// the packed-panel layout of `cpu_matmul` and runs the packed micro-kernel of `path` over all
/// `m` rows for those output columns.
fn fwd_tiled<T: Dequant>(
    path: CpuPath,
    w: &[T],
    n: usize,
    k: usize,
    x: &[f32],
    m: usize,
    out: &mut [f32],
) {
    let bpr = k / T::BLCK_SIZE;
    let op = OutPtr(out.as_mut_ptr());
    par(n.div_ceil(GROUP_ROWS), n * k * m, |range| {
        let mut panels = AlignedBuf::zeros(GROUP_ROWS * k);
        let mut rows = vec![0f32; NR * k];
        for g in range {
            let r0 = g * GROUP_ROWS;
            let nt = GROUP_ROWS.min(n - r0);
            let np = nt.div_ceil(NR);
            let buf = panels.as_mut_slice();
            for p in 0..np {
                let pr0 = r0 + p * NR;
                let nr = NR.min(n - pr0);
                dequant_blocks(path, &w[pr0 * bpr..(pr0 + nr) * bpr], &mut rows[..nr * k]);
                let panel = &mut buf[p * k * NR..(p + 1) * k * NR];
                // Row j of the dequantized rows is lane j of every step of the panel (rows read
                // in order; lanes past the last row stay 0).
                for j in 0..NR {
                    let lane = panel[j..].iter_mut().step_by(NR);
                    if j < nr {
                        for (d, v) in lane.zip(&rows[j * k..(j + 1) * k]) {
                            *d = *v;
                        }
                    } else {
                        lane.for_each(|d| *d = 0.0);
                    }
                }
            }
            // SAFETY: x has m rows of k floats; `panels` holds np packed panels of k steps,
            // 64-byte aligned; out columns r0..r0+nt of every row are written only here; the
            // path was checked by the caller.
            unsafe {
                cpu_matmul::gemm_panels(
                    path,
                    x.as_ptr(),
                    k,
                    m,
                    k,
                    panels.as_slice().as_ptr(),
                    k,
                    nt,
                    None,
                    op.get().add(r0),
                    n,
                    0..np,
                )
            };
        }
    });
}

/// Dequantizes consecutive blocks into `out` with [`Dequant`] compiled for `path` (candle's
/// `to_float` is compiled for the build's baseline; same values).
fn dequant_blocks<T: Dequant>(path: CpuPath, w: &[T], out: &mut [f32]) {
    match path {
        // SAFETY: the caller checked that this CPU runs the path.
        #[cfg(target_arch = "x86_64")]
        CpuPath::Avx512 => unsafe { dequant_avx512(w, out) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        CpuPath::Avx2 => unsafe { dequant_avx2(w, out) },
        _ => dequant_plain(w, out),
    }
}

#[inline(always)]
fn dequant_plain<T: Dequant>(w: &[T], out: &mut [f32]) {
    for (b, o) in w.iter().zip(out.chunks_exact_mut(T::BLCK_SIZE)) {
        T::dequant(b, o);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
unsafe fn dequant_avx512<T: Dequant>(w: &[T], out: &mut [f32]) {
    dequant_plain(w, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dequant_avx2<T: Dequant>(w: &[T], out: &mut [f32]) {
    dequant_plain(w, out)
}

/// Backward for few rows: each work item owns a range of block columns of `dx` and walks all
/// rows of `W`, dequantizing only its blocks.
fn bwd_axpy<T: GgmlType>(
    path: CpuPath,
    w: &[T],
    n: usize,
    k: usize,
    dy: &[f32],
    m: usize,
    out: &mut [f32],
) {
    let bs = T::BLCK_SIZE;
    let bpr = k / bs;
    let op = OutPtr(out.as_mut_ptr());
    par(bpr, n * k * m, |range| {
        let (c0, c1) = (range.start * bs, range.end * bs);
        let mut seg = vec![0f32; c1 - c0];
        let mut acc = vec![0f32; m * (c1 - c0)];
        for r in 0..n {
            T::to_float(&w[r * bpr + range.start..r * bpr + range.end], &mut seg);
            for i in 0..m {
                axpy(
                    path,
                    dy[i * n + r],
                    &seg,
                    &mut acc[i * (c1 - c0)..(i + 1) * (c1 - c0)],
                );
            }
        }
        for i in 0..m {
            for (j, v) in acc[i * (c1 - c0)..(i + 1) * (c1 - c0)].iter().enumerate() {
                // SAFETY: columns c0..c1 belong to this item only; in bounds.
                unsafe { *op.get().add(i * k + c0 + j) = *v };
            }
        }
    });
}

/// Backward for many rows: each work item owns one block column of `dx` (`bs` columns),
/// dequantizes that block of every row of `W` into packed panels of `Wᵀ` and runs the packed
/// micro-kernel of `path`, `dx[:, cols] = dy W[:, cols]`.
fn bwd_tiled<T: GgmlType>(
    path: CpuPath,
    w: &[T],
    n: usize,
    k: usize,
    dy: &[f32],
    m: usize,
    out: &mut [f32],
) {
    let bs = T::BLCK_SIZE;
    let bpr = k / bs;
    let op = OutPtr(out.as_mut_ptr());
    let np = bs.div_ceil(NR);
    par(bpr, n * k * m, |range| {
        let mut panels = AlignedBuf::zeros(np * n * NR);
        let mut seg = vec![0f32; bs];
        for cb in range {
            let buf = panels.as_mut_slice();
            for r in 0..n {
                T::to_float(std::slice::from_ref(&w[r * bpr + cb]), &mut seg);
                // Column c of this block goes to panel c / NR, lane c % NR, step r.
                for (c, v) in seg.iter().enumerate() {
                    buf[((c / NR) * n + r) * NR + c % NR] = *v;
                }
            }
            // SAFETY: dy has m rows of n floats; `panels` holds np packed panels of n steps,
            // 64-byte aligned; dx columns cb*bs..cb*bs+bs of every row are written only here;
            // the path was checked by the caller.
            unsafe {
                cpu_matmul::gemm_panels(
                    path,
                    dy.as_ptr(),
                    n,
                    m,
                    n,
                    panels.as_slice().as_ptr(),
                    n,
                    bs,
                    None,
                    op.get().add(cb * bs),
                    k,
                    0..np,
                )
            };
        }
    });
}

/// `Σ a[i] b[i]` in sixteen lanes, compiled for `path` (vectorised by the compiler: one
/// AVX-512 register, two AVX2 registers, four NEON registers; fused multiply-adds except on
/// the portable path, where `mul_add` could be a library call).
#[inline]
fn dot(path: CpuPath, a: &[f32], b: &[f32]) -> f32 {
    match path {
        // SAFETY: the path's features are available (the caller checked the path).
        #[cfg(target_arch = "x86_64")]
        CpuPath::Avx512 => unsafe { dot_avx512(a, b) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        CpuPath::Avx2 => unsafe { dot_avx2(a, b) },
        // NEON and FMA are part of the aarch64 baseline.
        CpuPath::Neon => dot_lanes::<true>(a, b),
        _ => dot_lanes::<false>(a, b),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
    dot_lanes::<true>(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    dot_lanes::<true>(a, b)
}

#[inline(always)]
fn dot_lanes<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for ((s, x), y) in acc.iter_mut().zip(x).zip(y) {
            *s = if FMA { x.mul_add(*y, *s) } else { *s + x * y };
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// `y += a x`, compiled for `path` (vectorised by the compiler, as [`dot`]).
#[inline]
fn axpy(path: CpuPath, a: f32, x: &[f32], y: &mut [f32]) {
    match path {
        // SAFETY: the path's features are available (the caller checked the path).
        #[cfg(target_arch = "x86_64")]
        CpuPath::Avx512 => unsafe { axpy_avx512(a, x, y) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        CpuPath::Avx2 => unsafe { axpy_avx2(a, x, y) },
        CpuPath::Neon => axpy_lanes::<true>(a, x, y),
        _ => axpy_lanes::<false>(a, x, y),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn axpy_avx512(a: f32, x: &[f32], y: &mut [f32]) {
    axpy_lanes::<true>(a, x, y)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn axpy_avx2(a: f32, x: &[f32], y: &mut [f32]) {
    axpy_lanes::<true>(a, x, y)
}

#[inline(always)]
fn axpy_lanes<const FMA: bool>(a: f32, x: &[f32], y: &mut [f32]) {
    for (yy, xx) in y.iter_mut().zip(x) {
        *yy = if FMA {
            xx.mul_add(a, *yy)
        } else {
            *yy + xx * a
        };
    }
}

/// [`QMatrix::linear`] as a candle op: forward by [`QMatrix::matmul_t`], backward to the
/// input by [`QMatrix::matmul`].
struct QLinearOp(QMatrix);

impl CustomOp1 for QLinearOp {
    fn name(&self) -> &'static str {
        "quantized-linear"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let k = self.0.cols;
        let dims = layout.dims().to_vec();
        if dims.last() != Some(&k) {
            candle_core::bail!("quantized linear: input {dims:?} does not end in {k}");
        }
        let all = storage.as_slice::<f32>()?;
        let m: usize = dims[..dims.len() - 1].iter().product();
        let Some((a, b)) = layout.contiguous_offsets() else {
            candle_core::bail!("quantized linear: input is not contiguous");
        };
        let x = &all[a..b];
        let mut out = vec![0f32; m * self.0.rows];
        self.0
            .matmul_t(x, m, &mut out)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let mut od = dims;
        *od.last_mut().expect("rank checked above") = self.0.rows;
        Ok((CpuStorage::F32(out), Shape::from(od)))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let g = self
            .0
            .backward_input(&grad_res.to_dtype(candle_core::DType::F32)?)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        Ok(Some(g))
    }
}

/// Whether a tensor is a plain f32 CPU tensor (what the quantized kernels take).
pub fn takes(x: &Tensor) -> bool {
    x.dtype() == candle_core::DType::F32 && x.device().is_cpu()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fused kernel's dequantizers give candle's values bit for bit, for every block type
    /// (random bytes for the quants; scales kept finite).
    #[test]
    fn fused_dequantizers_equal_candles() {
        let (rows, cols) = (3usize, 512usize);
        let vals: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7919 % 1013) as f32 - 506.0) / 300.0)
            .collect();
        let x = Tensor::from_vec(vals, (rows, cols), &Device::Cpu).unwrap();
        for &dtype in SUPPORTED {
            let q = QTensor::quantize(&x, dtype).unwrap();
            let mut bytes = q.data().unwrap().into_owned();
            // Scramble the quant bits (not the f16 scales) so every bit pattern shows up.
            let offs = scale_offsets(dtype).unwrap();
            let size = dtype.type_size();
            let mut state = 0x9e37_79b9_u32;
            for (i, byte) in bytes.iter_mut().enumerate() {
                let o = i % size;
                if offs.iter().any(|&s| o == s || o == s + 1) {
                    continue;
                }
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                *byte = (state >> 24) as u8;
            }
            let m = QMatrix::from_bytes(dtype, &bytes, rows, cols).unwrap();
            let want: Vec<f32> = m
                .dequantize()
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let mut got = vec![0f32; rows * cols];
            with_block!(dtype, T => {
                let blocks = m.blocks::<T>().unwrap();
                for (blk, o) in blocks.iter().zip(got.chunks_exact_mut(T::BLCK_SIZE)) {
                    T::dequant(blk, o);
                }
                Ok::<(), ModelError>(())
            })
            .unwrap();
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g.to_bits(), w.to_bits(), "{dtype:?} value {i}: {g} vs {w}");
            }
        }
    }

    /// For every block type, a NaN or infinite value written over each scale of one block is
    /// found in that block, and (so the offsets are really the scales) dequantizes to a
    /// non-finite value; clean matrices have none.
    #[test]
    fn non_finite_scales_are_found_in_every_block_type() {
        let (rows, cols) = (4usize, 512usize);
        let vals: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 40.0)
            .collect();
        let x = Tensor::from_vec(vals, (rows, cols), &Device::Cpu).unwrap();
        for &dtype in SUPPORTED {
            let q = QTensor::quantize(&x, dtype).unwrap();
            let clean = QMatrix::from_qtensor(q).unwrap();
            assert_eq!(clean.first_nonfinite_block().unwrap(), None, "{dtype:?}");
            let offsets = scale_offsets(dtype).unwrap();
            let size = dtype.type_size();
            for &o in offsets {
                for bad in [0x7e00u16, 0x7c00, 0xfc00] {
                    let mut bytes = clean.bytes().unwrap().into_owned();
                    let at = 2 * size + o;
                    bytes[at..at + 2].copy_from_slice(&bad.to_le_bytes());
                    let m = QMatrix::from_bytes(dtype, &bytes, rows, cols).unwrap();
                    assert_eq!(
                        m.first_nonfinite_block().unwrap(),
                        Some(2),
                        "{dtype:?} offset {o}"
                    );
                    let d: Vec<f32> = m
                        .dequantize()
                        .unwrap()
                        .flatten_all()
                        .unwrap()
                        .to_vec1()
                        .unwrap();
                    assert!(
                        d.iter().any(|v| !v.is_finite()),
                        "{dtype:?}: offset {o} is not a scale"
                    );
                }
            }
        }
    }
}
