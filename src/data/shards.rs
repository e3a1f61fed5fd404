//! Hugging Face datasets folders: a dataset repository as the Hub lays it out, with its rows in
//! shard files `data/SPLIT-00000-of-0000N.EXT` (an optional `-HASH` before the extension, as
//! older uploads have; `EXT` one of the dataset formats, possibly gzip/zstd-compressed). One
//! split of such a folder reads as one dataset, its shards in order. This module only finds and
//! checks the shard files; reading them is the readers' job.
use super::error::DataError;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Dataset extensions a shard may have (before an optional compression suffix).
const SHARD_EXTS: &[&str] = &["parquet", "jsonl", "json", "csv", "tsv", "ndjson"];
/// Compression suffixes a text shard may add.
const COMPRESSED: &[&str] = &["gz", "zst"];
/// Most shards one split may have (the Hub's names have five digits).
pub const MAX_SHARDS: usize = 99_999;

/// One shard file name, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ShardName {
    split: String,
    index: usize,
    of: usize,
    ext: String,
}

/// Parses `SPLIT-IIIII-of-NNNNN[-HASH].EXT[.gz|.zst]`; `None` for any other name.
fn parse_shard_name(name: &str) -> Option<ShardName> {
    let (stem, ext) = name.split_once('.')?;
    let mut ext_parts = ext.split('.');
    let first = ext_parts.next()?.to_ascii_lowercase();
    let second = ext_parts.next().map(str::to_ascii_lowercase);
    if ext_parts.next().is_some()
        || !SHARD_EXTS.contains(&first.as_str())
        || second.as_deref().is_some_and(|c| !COMPRESSED.contains(&c))
    {
        return None;
    }
    let parts: Vec<&str> = stem.split('-').collect();
    if !(parts.len() == 4 || parts.len() == 5) || parts[2] != "of" {
        return None;
    }
    let split = parts[0];
    let ok_split =
        !split.is_empty() && split.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let number = |s: &str| -> Option<usize> {
        if s.len() >= 5 && s.len() <= 9 && s.bytes().all(|b| b.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    let (index, of) = (number(parts[1])?, number(parts[3])?);
    if !ok_split || of == 0 || index >= of {
        return None;
    }
    if parts.len() == 5
        && (parts[4].is_empty() || !parts[4].chars().all(|c| c.is_ascii_alphanumeric()))
    {
        return None;
    }
    Some(ShardName {
        split: split.to_string(),
        index,
        of,
        ext: ext.to_ascii_lowercase(),
    })
}

fn invalid(dir: &Path, msg: impl std::fmt::Display) -> DataError {
    DataError::Invalid(format!("{}: {msg}", dir.display()))
}

/// The folder holding the shards: `DIR/data` when it exists, else `DIR` itself.
fn shard_folder(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    if data.is_dir() {
        data
    } else {
        dir.to_path_buf()
    }
}

/// The splits of a Hugging Face datasets folder (`dir` or `dir/data`) with their shard files in
/// order, each split checked complete: shards `0..N` all present once, all saying `-of-N`, all
/// of one extension. Errors name the folder and the missing or conflicting file.
pub fn hf_splits(dir: &Path) -> Result<BTreeMap<String, Vec<PathBuf>>, DataError> {
    let folder = shard_folder(dir);
    let entries = std::fs::read_dir(&folder).map_err(|e| DataError::io(&folder, e))?;
    let mut found: BTreeMap<String, Vec<(ShardName, PathBuf)>> = BTreeMap::new();
    let mut seen = 0usize;
    for entry in entries {
        let entry = entry.map_err(|e| DataError::io(&folder, e))?;
        seen += 1;
        if seen > 4 * MAX_SHARDS {
            return Err(invalid(&folder, "more files than any dataset folder has"));
        }
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(s) = parse_shard_name(name) {
            if entry.path().is_file() {
                found
                    .entry(s.split.clone())
                    .or_default()
                    .push((s, entry.path()));
            }
        }
    }
    if found.is_empty() {
        return Err(invalid(
            dir,
            "a folder with no dataset shards (expected files such as \
             data/train-00000-of-00002.parquet, as the Hugging Face Hub lays out datasets)",
        ));
    }
    let mut out = BTreeMap::new();
    for (split, mut shards) in found {
        shards.sort_by(|a, b| a.0.index.cmp(&b.0.index).then(a.1.cmp(&b.1)));
        let of = shards[0].0.of;
        if let Some((s, p)) = shards.iter().find(|(s, _)| s.of != of) {
            return Err(invalid(
                &folder,
                format!(
                    "split `{split}`: {} says {} shards but {} says {of}",
                    p.display(),
                    s.of,
                    shards[0].1.display()
                ),
            ));
        }
        if let Some((_, p)) = shards.iter().find(|(s, _)| s.ext != shards[0].0.ext) {
            return Err(invalid(
                &folder,
                format!(
                    "split `{split}`: shards of two formats ({} and {})",
                    shards[0].1.display(),
                    p.display()
                ),
            ));
        }
        if let Some(w) = shards.windows(2).find(|w| w[0].0.index == w[1].0.index) {
            return Err(invalid(
                &folder,
                format!(
                    "split `{split}`: shard {} appears twice ({} and {})",
                    w[0].0.index,
                    w[0].1.display(),
                    w[1].1.display()
                ),
            ));
        }
        if shards.len() != of {
            let have: std::collections::BTreeSet<usize> =
                shards.iter().map(|(s, _)| s.index).collect();
            let missing = (0..of).find(|i| !have.contains(i)).unwrap_or(0);
            return Err(invalid(
                &folder,
                format!(
                    "split `{split}` has {} of its {of} shards; shard {missing} \
                     (`{split}-{missing:05}-of-{of:05}.{}`) is missing",
                    shards.len(),
                    shards[0].0.ext
                ),
            ));
        }
        out.insert(split, shards.into_iter().map(|(_, p)| p).collect());
    }
    Ok(out)
}

/// The shard files of one split of a Hugging Face datasets folder, in order: `split`, or the
/// folder's only split when `None` (several splits then need a choice; the error lists them).
pub fn hf_split_files(
    dir: &Path,
    split: Option<&str>,
) -> Result<(String, Vec<PathBuf>), DataError> {
    let mut splits = hf_splits(dir)?;
    let names = splits_list(&splits);
    match split {
        Some(s) => match splits.remove(s) {
            Some(files) => Ok((s.to_string(), files)),
            None => Err(invalid(
                dir,
                format!("no split `{s}` (the folder has {names})"),
            )),
        },
        None if splits.len() == 1 => {
            let (s, files) = splits.into_iter().next().expect("one split");
            Ok((s, files))
        }
        None => Err(invalid(
            dir,
            format!(
                "a Hugging Face datasets folder with splits {}: choose one with --split \
                 (or convert one to a file: steerlab data convert DIR --split NAME --out FILE.jsonl)",
                names
            ),
        )),
    }
}

fn splits_list(splits: &BTreeMap<String, Vec<PathBuf>>) -> String {
    splits
        .iter()
        .map(|(s, f)| {
            format!(
                "{s} ({} shard{})",
                f.len(),
                if f.len() == 1 { "" } else { "s" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_names_are_parsed_strictly() {
        let s = parse_shard_name("train-00001-of-00002.parquet").unwrap();
        assert_eq!(
            (s.split.as_str(), s.index, s.of, s.ext.as_str()),
            ("train", 1, 2, "parquet")
        );
        let s = parse_shard_name("test-00000-of-00001-5a2e0f3c.jsonl.gz").unwrap();
        assert_eq!(
            (s.split.as_str(), s.index, s.of, s.ext.as_str()),
            ("test", 0, 1, "jsonl.gz")
        );
        for bad in [
            "train-00002-of-00002.parquet",
            "train-00000-of-00000.parquet",
            "train-0-of-1.parquet",
            "train-00000-of-00001.txt",
            "train-00000-of-00001.parquet.bz2",
            "train-00000-from-00001.parquet",
            "-00000-of-00001.parquet",
            "README.md",
            "train.parquet",
            "tr ain-00000-of-00001.parquet",
        ] {
            assert_eq!(parse_shard_name(bad), None, "{bad}");
        }
    }
}
