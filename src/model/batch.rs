//! [`Batch`]: token ids of several sequences, right-padded, with their attention mask and
//! prompt lengths. Must not run models.
use candle_core::{Device, Tensor};

use super::hooks::PosCtx;
use super::{ModelError, Result};

/// Token ids of several sequences, right-padded to a common length, with an attention mask.
#[derive(Debug, Clone)]
pub struct Batch {
    ids: Tensor,
    mask: Tensor,
    lens: Vec<usize>,
    prompt_lens: Option<Vec<usize>>,
    pub(crate) max_id: u32,
}

impl Batch {
    /// Builds a batch from sequences (each non-empty), right-padding with `pad_id`.
    pub fn from_sequences(seqs: &[Vec<u32>], pad_id: u32, device: &Device) -> Result<Batch> {
        if seqs.is_empty() {
            return Err(ModelError::InvalidInput("empty batch: no sequences".into()));
        }
        if let Some(i) = seqs.iter().position(|s| s.is_empty()) {
            return Err(ModelError::InvalidInput(format!(
                "sequence {i} of the batch is empty"
            )));
        }
        let t = seqs.iter().map(|s| s.len()).max().unwrap_or(0);
        let b = seqs.len();
        let mut ids = Vec::with_capacity(b * t);
        let mut mask = Vec::with_capacity(b * t);
        for s in seqs {
            ids.extend_from_slice(s);
            ids.extend(std::iter::repeat_n(pad_id, t - s.len()));
            mask.extend(std::iter::repeat_n(1f32, s.len()));
            mask.extend(std::iter::repeat_n(0f32, t - s.len()));
        }
        let max_id = seqs
            .iter()
            .flat_map(|s| s.iter().copied())
            .max()
            .unwrap_or(0);
        Ok(Batch {
            ids: Tensor::from_vec(ids, (b, t), device)?,
            mask: Tensor::from_vec(mask, (b, t), device)?,
            lens: seqs.iter().map(|s| s.len()).collect(),
            prompt_lens: None,
            max_id,
        })
    }

    /// Marks the first `lens[b]` tokens of sequence `b` as prompt (for `Positions::PromptOnly`
    /// and `GeneratedOnly`).
    pub fn with_prompt_lens(mut self, lens: Vec<usize>) -> Result<Batch> {
        if lens.len() != self.lens.len() {
            return Err(ModelError::InvalidInput(format!(
                "{} prompt lengths for a batch of {} sequences",
                lens.len(),
                self.lens.len()
            )));
        }
        self.prompt_lens = Some(lens);
        Ok(self)
    }

    /// Token ids `[B, T]` (u32).
    pub fn ids(&self) -> &Tensor {
        &self.ids
    }

    /// Attention mask `[B, T]` (f32: 1 = token, 0 = padding).
    pub fn attention_mask(&self) -> &Tensor {
        &self.mask
    }

    /// Unpadded length of each sequence.
    pub fn lens(&self) -> &[usize] {
        &self.lens
    }

    /// Prompt lengths, if set.
    pub fn prompt_lens(&self) -> Option<&[usize]> {
        self.prompt_lens.as_deref()
    }

    /// Number of sequences.
    pub fn batch_size(&self) -> usize {
        self.lens.len()
    }

    /// Padded length.
    pub fn seq_len(&self) -> usize {
        self.lens.iter().copied().max().unwrap_or(0)
    }

    pub(crate) fn key_valid(&self) -> Option<Vec<Vec<bool>>> {
        let t = self.seq_len();
        if self.lens.iter().all(|&l| l == t) {
            return None;
        }
        Some(
            self.lens
                .iter()
                .map(|&l| (0..t).map(|i| i < l).collect())
                .collect(),
        )
    }

    pub(crate) fn pos_ctx(&self) -> PosCtx {
        PosCtx {
            batch: self.batch_size(),
            len: self.seq_len(),
            offset: 0,
            prompt_lens: self.prompt_lens.clone(),
        }
    }
}
