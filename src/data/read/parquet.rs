//! Parquet via the parquet/arrow crates, one record batch (≤ 1024 rows of one row group) at a
//! time. Arrow values become JSON values: strings, numbers, booleans, lists (message lists),
//! structs and maps (factor objects). A decoder panic on a corrupt file is caught and reported.
use super::text::Row;
use crate::data::error::{DataError, Loc};
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int32Type, Int64Type};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use serde_json::{Map, Number, Value};
use std::fs::File;
use std::path::{Path, PathBuf};

/// Streaming Parquet rows.
pub struct ParquetRows {
    path: PathBuf,
    reader: ParquetRecordBatchReader,
    columns: Vec<String>,
    total_rows: u64,
    batch: Option<RecordBatch>,
    in_batch: usize,
    row: u64,
    done: bool,
}

fn perr(path: &Path, at: Option<u64>, msg: impl std::fmt::Display) -> DataError {
    DataError::Parquet {
        path: path.to_path_buf(),
        at,
        msg: msg.to_string(),
    }
}

fn panic_msg(p: Box<dyn std::any::Any + Send>) -> String {
    let s = p
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "decoder failure".into());
    format!("the decoder failed ({s}); the file is probably corrupt")
}

impl ParquetRows {
    /// Opens a Parquet file and reads its footer (schema, row groups).
    pub fn open(path: &Path) -> Result<Self, DataError> {
        Self::open_at(path, 0)
    }

    /// Opens a Parquet file positioned at the 0-based row `offset`.
    pub fn open_at(path: &Path, offset: u64) -> Result<Self, DataError> {
        let f = File::open(path).map_err(|e| DataError::io(path, e))?;
        if f.metadata().map(|m| m.len()).unwrap_or(0) == 0 {
            return Err(DataError::Empty {
                path: path.to_path_buf(),
            });
        }
        let built = super::guard::catch_quiet(|| {
            let b = ParquetRecordBatchReaderBuilder::try_new(f)?;
            let columns: Vec<String> = b
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            let total = b.metadata().file_metadata().num_rows().max(0) as u64;
            let r = b
                .with_batch_size(1024)
                .with_offset(offset as usize)
                .build()?;
            Ok::<_, parquet::errors::ParquetError>((r, columns, total))
        });
        let (reader, columns, total_rows) = match built {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => return Err(perr(path, None, e)),
            Err(p) => return Err(perr(path, None, panic_msg(p))),
        };
        Ok(Self {
            path: path.to_path_buf(),
            reader,
            columns,
            total_rows,
            batch: None,
            in_batch: 0,
            row: offset,
            done: false,
        })
    }

    /// Row count from the footer (no data read).
    pub fn total_rows(&self) -> u64 {
        self.total_rows
    }

    /// The schema's top-level column names.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The file.
    pub fn path(&self) -> &PathBuf {
        &self.path
    }
}

impl Iterator for ParquetRows {
    type Item = Result<Row, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            if let Some(b) = &self.batch {
                if self.in_batch < b.num_rows() {
                    let i = self.in_batch;
                    self.in_batch += 1;
                    self.row += 1;
                    let loc = Loc::row(self.row);
                    let mut fields = Map::new();
                    for (name, col) in self.columns.iter().zip(b.columns()) {
                        match to_json(col, i) {
                            Ok(v) => {
                                fields.insert(name.clone(), v);
                            }
                            Err(msg) => {
                                return Some(Err(DataError::Field {
                                    path: self.path.clone(),
                                    loc,
                                    field: name.clone(),
                                    msg,
                                }))
                            }
                        }
                    }
                    return Some(Ok(Row {
                        loc,
                        fields,
                        group: None,
                    }));
                }
            }
            let next = super::guard::catch_quiet(|| self.reader.next());
            match next {
                Ok(None) => {
                    self.done = true;
                    return None;
                }
                Ok(Some(Ok(b))) => {
                    self.batch = Some(b);
                    self.in_batch = 0;
                }
                Ok(Some(Err(e))) => {
                    self.done = true;
                    return Some(Err(perr(&self.path, Some(self.row + 1), e)));
                }
                Err(p) => {
                    self.done = true;
                    return Some(Err(perr(&self.path, Some(self.row + 1), panic_msg(p))));
                }
            }
        }
    }
}

fn num_f64(x: f64) -> Value {
    Number::from_f64(x)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// Converts the `i`-th value of an Arrow array to JSON.
fn to_json(a: &ArrayRef, i: usize) -> Result<Value, String> {
    use arrow::datatypes as t;
    if a.is_null(i) {
        return Ok(Value::Null);
    }
    Ok(match a.data_type() {
        DataType::Null => Value::Null,
        DataType::Boolean => Value::Bool(a.as_boolean().value(i)),
        DataType::Int8 => a.as_primitive::<t::Int8Type>().value(i).into(),
        DataType::Int16 => a.as_primitive::<t::Int16Type>().value(i).into(),
        DataType::Int32 => a.as_primitive::<Int32Type>().value(i).into(),
        DataType::Int64 => a.as_primitive::<Int64Type>().value(i).into(),
        DataType::UInt8 => a.as_primitive::<t::UInt8Type>().value(i).into(),
        DataType::UInt16 => a.as_primitive::<t::UInt16Type>().value(i).into(),
        DataType::UInt32 => a.as_primitive::<t::UInt32Type>().value(i).into(),
        DataType::UInt64 => a.as_primitive::<t::UInt64Type>().value(i).into(),
        DataType::Float16 => num_f64(a.as_primitive::<t::Float16Type>().value(i).to_f64()),
        DataType::Float32 => num_f64(a.as_primitive::<t::Float32Type>().value(i) as f64),
        DataType::Float64 => num_f64(a.as_primitive::<t::Float64Type>().value(i)),
        DataType::Utf8 => Value::String(a.as_string::<i32>().value(i).to_string()),
        DataType::LargeUtf8 => Value::String(a.as_string::<i64>().value(i).to_string()),
        DataType::Utf8View => Value::String(a.as_string_view().value(i).to_string()),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
            let bytes: &[u8] = match a.data_type() {
                DataType::Binary => a.as_binary::<i32>().value(i),
                DataType::LargeBinary => a.as_binary::<i64>().value(i),
                _ => a.as_binary_view().value(i),
            };
            Value::String(
                String::from_utf8(bytes.to_vec())
                    .map_err(|_| "a binary cell is not UTF-8 text".to_string())?,
            )
        }
        DataType::List(_) => list(&a.as_list::<i32>().value(i))?,
        DataType::LargeList(_) => list(&a.as_list::<i64>().value(i))?,
        DataType::FixedSizeList(..) => list(&a.as_fixed_size_list().value(i))?,
        DataType::Struct(fields) => {
            let s = a.as_struct();
            let mut m = Map::new();
            for (f, col) in fields.iter().zip(s.columns()) {
                m.insert(f.name().clone(), to_json(col, i)?);
            }
            Value::Object(m)
        }
        DataType::Map(..) => {
            let entries = a.as_map().value(i);
            let (keys, vals) = (entries.column(0), entries.column(1));
            let mut m = Map::new();
            for j in 0..entries.len() {
                let k = match to_json(keys, j)? {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                m.insert(k, to_json(vals, j)?);
            }
            Value::Object(m)
        }
        DataType::Dictionary(..) => {
            let d = a.as_any_dictionary();
            let key = d.normalized_keys()[i];
            to_json(d.values(), key)?
        }
        _ => Value::String(
            arrow::util::display::array_value_to_string(a, i).map_err(|e| e.to_string())?,
        ),
    })
}

fn list(values: &ArrayRef) -> Result<Value, String> {
    (0..values.len())
        .map(|j| to_json(values, j))
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}
