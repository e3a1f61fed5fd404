//! Preference data: record types, readers for JSONL/JSON/CSV/Parquet, format detection and
//! column mapping, validation with file/line/field errors, splits, planted synthetic data and
//! the real default sets. Must not contain model or statistics code.
pub mod batching;
mod error;
pub mod read;
mod types;
pub use error::{DataError, Loc};
pub use read::{
    detect_compression, detect_format, Compression, Format, ReadOptions, Row, RowReader,
};
pub use types::*;
mod convert;
mod layout;
mod load;
pub use convert::parse_transcript;
pub use layout::{resolve, ColumnMapping, Field, Layout, Resolved};
pub use load::{
    check_dataset, for_each_record, judgements, load_dataset, load_dataset_with, CheckReport,
    Dataset, LoadOptions, SkippedRow, MAX_LISTED_SKIPS,
};
mod preview;
mod split;
pub use preview::{
    cell_text, count_rows, preview, preview_range, Preview, PreviewRow, RowIndex,
    PREVIEW_CELL_CHARS,
};
pub use split::{
    components, normalise_prompt_text, prompt_keys, split_by_keys, split_by_prompt, split_random,
    split_random_n, Split,
};
mod write;
pub use write::{record_to_json, write_atomic, write_csv, write_json_lines, write_jsonl};
pub mod defaults;
pub mod shards;
pub mod synth;
mod synth_text;
