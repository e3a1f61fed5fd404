//! Train/test splits: seeded random, and by connected components over prompts (WIMHF): records
//! that share a normalised prompt text or an id end up on the same side, so no prompt is both
//! trained and tested on. Returns indices, so callers can split parallel arrays (embeddings).
use super::error::DataError;
use super::types::Record;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::collections::HashMap;

/// Indices of the train and test sides (each sorted ascending).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Split {
    /// Train indices.
    pub train: Vec<usize>,
    /// Test indices.
    pub test: Vec<usize>,
}

impl Split {
    /// Copies `items` into (train, test) by this split.
    pub fn apply<T: Clone>(&self, items: &[T]) -> (Vec<T>, Vec<T>) {
        (
            self.train.iter().map(|&i| items[i].clone()).collect(),
            self.test.iter().map(|&i| items[i].clone()).collect(),
        )
    }
}

fn check_fraction(f: f64) -> Result<(), DataError> {
    if !(0.0..=1.0).contains(&f) || f.is_nan() {
        return Err(DataError::Invalid(format!(
            "the test fraction must be in [0, 1], got {f}"
        )));
    }
    Ok(())
}

/// A seeded random split of `n` items: `round(n · test_fraction)` go to test.
pub fn split_random_n(n: usize, test_fraction: f64, seed: u64) -> Result<Split, DataError> {
    check_fraction(test_fraction)?;
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut StdRng::seed_from_u64(seed));
    let k = ((n as f64) * test_fraction).round() as usize;
    let mut test = idx[..k].to_vec();
    let mut train = idx[k..].to_vec();
    test.sort_unstable();
    train.sort_unstable();
    Ok(Split { train, test })
}

/// A seeded random split of `items`.
pub fn split_random<T>(items: &[T], test_fraction: f64, seed: u64) -> Result<Split, DataError> {
    split_random_n(items.len(), test_fraction, seed)
}

/// Normalises prompt text for grouping: lowercase, whitespace runs collapsed, trimmed.
pub fn normalise_prompt_text(s: &str) -> String {
    s.split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Connected components of items linked by shared keys (item `i` has keys `keys[i]`; items
/// with a key in common are in one component). Returns a component id per item.
pub fn components(keys: &[Vec<String>]) -> Vec<usize> {
    let n = keys.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (i, ks) in keys.iter().enumerate() {
        for k in ks {
            match first.get(k.as_str()) {
                Some(&j) => {
                    let (a, b) = (find(&mut parent, i), find(&mut parent, j));
                    if a != b {
                        parent[a.max(b)] = a.min(b);
                    }
                }
                None => {
                    first.insert(k.as_str(), i);
                }
            }
        }
    }
    let mut id: HashMap<usize, usize> = HashMap::new();
    (0..n)
        .map(|i| {
            let r = find(&mut parent, i);
            let next = id.len();
            *id.entry(r).or_insert(next)
        })
        .collect()
}

/// Splits items grouped by shared keys so that no component straddles the sides: components
/// are shuffled (seeded) and moved to test until it holds at least `round(n · test_fraction)`
/// items (a large component can overshoot).
pub fn split_by_keys(
    keys: &[Vec<String>],
    test_fraction: f64,
    seed: u64,
) -> Result<Split, DataError> {
    check_fraction(test_fraction)?;
    let comp = components(keys);
    let ncomp = comp.iter().copied().max().map_or(0, |m| m + 1);
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); ncomp];
    for (i, &c) in comp.iter().enumerate() {
        members[c].push(i);
    }
    let mut order: Vec<usize> = (0..ncomp).collect();
    order.shuffle(&mut StdRng::seed_from_u64(seed));
    let target = ((keys.len() as f64) * test_fraction).round() as usize;
    let mut split = Split::default();
    for c in order {
        if split.test.len() < target {
            split.test.extend(&members[c]);
        } else {
            split.train.extend(&members[c]);
        }
    }
    split.train.sort_unstable();
    split.test.sort_unstable();
    Ok(split)
}

/// The grouping keys of a record: its normalised prompt text (none when empty) and its id.
/// Ids only link records when the file repeats them (generated ids are unique).
pub fn prompt_keys(r: &Record) -> Vec<String> {
    let mut keys = vec![format!("id\u{1f}{}", r.id())];
    let p = normalise_prompt_text(&r.prompt().to_plain());
    if !p.is_empty() {
        keys.push(format!("prompt\u{1f}{p}"));
    }
    keys
}

/// Split by connected components over prompts and ids (WIMHF's split).
pub fn split_by_prompt(
    records: &[Record],
    test_fraction: f64,
    seed: u64,
) -> Result<Split, DataError> {
    let keys: Vec<Vec<String>> = records.iter().map(prompt_keys).collect();
    split_by_keys(&keys, test_fraction, seed)
}
