//! Length-grouped batch planning: which items go together in one forward pass so that a batch
//! padded to its longest member wastes little, and how to put per-item results back into the
//! caller's order.
//!
//! Two planners:
//! - [`BatchPlan::by_length`] for passes whose result per item does not depend on its
//!   batch-mates (caching activations or reference log-probabilities, scoring, embedding):
//!   items sorted by length (ties by index, so the plan is deterministic), cut by a row and an
//!   optional token budget. [`BatchPlan::scatter`] restores the input order.
//! - [`group_minibatches`] for training, where the batch composition changes the trajectory:
//!   the Hugging Face `group_by_length` recipe (shuffle, mega-batches of ~50 minibatches, sort
//!   each by length, split, shuffle the minibatch order), seeded by the caller's RNG.
//!
//! Only index arithmetic here: no tensors, no model, no data-set reading.
use rand::seq::SliceRandom;
use rand::Rng;

/// Why per-batch results could not be scattered back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchingError {
    /// A batch returned another number of results than it has items.
    #[error("batch {batch}: {got} results for {want} items")]
    Count {
        /// 0-based batch in the plan.
        batch: usize,
        /// Results given.
        got: usize,
        /// Items in the batch.
        want: usize,
    },
    /// Results were given for another number of batches than the plan has.
    #[error("{got} batches of results for a plan of {want} batches")]
    Batches {
        /// Batches given.
        got: usize,
        /// Batches planned.
        want: usize,
    },
}

/// How large one batch may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchBudget {
    /// Most items per batch (at least 1 is used).
    pub max_rows: usize,
    /// Most padded tokens per batch (rows × longest length); an item longer than this goes
    /// alone. `None`: rows only.
    pub max_tokens: Option<usize>,
}

impl BatchBudget {
    /// At most `max_rows` items per batch.
    pub fn rows(max_rows: usize) -> Self {
        Self {
            max_rows,
            max_tokens: None,
        }
    }

    /// At most `max_rows` items and `max_tokens` padded tokens per batch.
    pub fn tokens(max_rows: usize, max_tokens: usize) -> Self {
        Self {
            max_rows,
            max_tokens: Some(max_tokens),
        }
    }
}

/// Real and padded token counts of a set of batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Padding {
    /// Tokens of the items themselves.
    pub real: usize,
    /// Slots computed: per batch, rows × longest length.
    pub slots: usize,
}

impl Padding {
    /// Padding computed for `batches` of items with lengths `lens`.
    pub fn of(batches: &[Vec<usize>], lens: &[usize]) -> Self {
        let mut p = Padding::default();
        for b in batches {
            let longest = b.iter().map(|&i| lens[i]).max().unwrap_or(0);
            p.real += b.iter().map(|&i| lens[i]).sum::<usize>();
            p.slots += longest * b.len();
        }
        p
    }

    /// Fraction of the computed slots that are padding (0 when nothing was computed).
    pub fn fraction(&self) -> f64 {
        if self.slots == 0 {
            0.0
        } else {
            (self.slots - self.real) as f64 / self.slots as f64
        }
    }
}

impl std::ops::Add for Padding {
    type Output = Padding;

    /// Sum of two counts.
    fn add(self, other: Padding) -> Padding {
        Padding {
            real: self.real + other.real,
            slots: self.slots + other.slots,
        }
    }
}

/// Batches of item indices covering `0..n` exactly once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchPlan {
    batches: Vec<Vec<usize>>,
    n: usize,
}

impl BatchPlan {
    /// Items sorted by length (ties by index), cut greedily so that no batch exceeds `budget`.
    pub fn by_length(lens: &[usize], budget: BatchBudget) -> Self {
        let mut order: Vec<usize> = (0..lens.len()).collect();
        order.sort_by_key(|&i| (lens[i], i));
        let max_rows = budget.max_rows.max(1);
        let mut batches = Vec::new();
        let mut cur: Vec<usize> = Vec::new();
        for i in order {
            // Sorted ascending: the newcomer is the longest of the batch.
            let fits_rows = cur.len() < max_rows;
            let fits_tokens = budget
                .max_tokens
                .is_none_or(|t| (cur.len() + 1) * lens[i] <= t);
            if !(cur.is_empty() || fits_rows && fits_tokens) {
                batches.push(std::mem::take(&mut cur));
            }
            cur.push(i);
        }
        if !cur.is_empty() {
            batches.push(cur);
        }
        Self {
            batches,
            n: lens.len(),
        }
    }

    /// Items in input order, `max_rows` per batch (the plan without grouping).
    pub fn sequential(n: usize, max_rows: usize) -> Self {
        let idx: Vec<usize> = (0..n).collect();
        Self {
            batches: idx.chunks(max_rows.max(1)).map(|c| c.to_vec()).collect(),
            n,
        }
    }

    /// The batches, each a list of item indices.
    pub fn batches(&self) -> &[Vec<usize>] {
        &self.batches
    }

    /// Number of batches.
    pub fn len(&self) -> usize {
        self.batches.len()
    }

    /// True when there are no items.
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// Number of items planned.
    pub fn n_items(&self) -> usize {
        self.n
    }

    /// Real and padded token counts of this plan for items of lengths `lens`.
    pub fn padding(&self, lens: &[usize]) -> Padding {
        Padding::of(&self.batches, lens)
    }

    /// Puts per-batch results (one `Vec` per batch, in plan order, one value per item in the
    /// batch's order) back into input order.
    pub fn scatter<T>(
        &self,
        per_batch: impl IntoIterator<Item = Vec<T>>,
    ) -> Result<Vec<T>, BatchingError> {
        let mut slots: Vec<Option<T>> = (0..self.n).map(|_| None).collect();
        let mut seen = 0usize;
        for (bi, values) in per_batch.into_iter().enumerate() {
            let idx = self.batches.get(bi).ok_or(BatchingError::Batches {
                got: bi + 1,
                want: self.batches.len(),
            })?;
            if values.len() != idx.len() {
                return Err(BatchingError::Count {
                    batch: bi,
                    got: values.len(),
                    want: idx.len(),
                });
            }
            for (&i, v) in idx.iter().zip(values) {
                slots[i] = Some(v);
            }
            seen = bi + 1;
        }
        if seen != self.batches.len() {
            return Err(BatchingError::Batches {
                got: seen,
                want: self.batches.len(),
            });
        }
        // Every index appears once in the plan, and every batch was filled above.
        Ok(slots.into_iter().flatten().collect())
    }
}

/// Mega-batches hold this many minibatches in [`group_minibatches`] (as in Hugging Face's
/// `LengthGroupedSampler`).
pub const MEGABATCH_MINIBATCHES: usize = 50;

/// Training minibatches of similar-length items: shuffle `0..lens.len()`, cut it into
/// mega-batches of `megabatch × batch_size` items, sort each mega-batch by length (longest
/// first, stable), split it into minibatches of `batch_size`, and shuffle the minibatch order.
/// Every item appears once; as many minibatches as plain chunking gives (only the last
/// mega-batch may end with a short one). Deterministic for a given `rng` state.
pub fn group_minibatches(
    lens: &[usize],
    batch_size: usize,
    megabatch: usize,
    rng: &mut impl Rng,
) -> Vec<Vec<usize>> {
    let bs = batch_size.max(1);
    let mut order: Vec<usize> = (0..lens.len()).collect();
    order.shuffle(rng);
    let mut out: Vec<Vec<usize>> = Vec::with_capacity(lens.len().div_ceil(bs));
    for mega in order.chunks(bs * megabatch.max(1)) {
        let mut mega = mega.to_vec();
        mega.sort_by_key(|&i| std::cmp::Reverse(lens[i]));
        out.extend(mega.chunks(bs).map(|c| c.to_vec()));
    }
    out.shuffle(rng);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_length_sorts_and_respects_budgets() {
        let lens = [5, 1, 9, 3, 3, 7, 2];
        let p = BatchPlan::by_length(&lens, BatchBudget::rows(3));
        assert_eq!(p.batches(), &[vec![1, 6, 3], vec![4, 0, 5], vec![2]]);
        // rows × longest ≤ 9: [1,2] → 2·2=4, +3 → 3·3=9, +3 → 4·3=12 > 9 → cut
        let p = BatchPlan::by_length(&lens, BatchBudget::tokens(10, 9));
        assert_eq!(
            p.batches(),
            &[vec![1, 6, 3], vec![4], vec![0], vec![5], vec![2]]
        );
        let pad = p.padding(&lens);
        assert_eq!(pad.real, 30);
        assert_eq!(pad.slots, 9 + 3 + 5 + 7 + 9);
    }
}
