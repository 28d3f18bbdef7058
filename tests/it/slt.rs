//! Runs every `tests/slt/*.slt` golden file against a fresh embedded database.
//!
//! `VIGIL_BLESS=1 cargo test -p vigil-tests slt` rewrites the expected results from what
//! vigil returns now; review the diff before committing it. `EXPLAIN` prints only the
//! physical plan, one line per row, with the data directory replaced by `<DIR>`.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use async_trait::async_trait;
use sqllogictest::{DBOutput, DefaultColumnType};
use vigil::Db;

use crate::support::test_options;

struct VigilSlt {
    db: Arc<Db>,
    dir: String,
    _tmp: tempfile::TempDir,
}

#[derive(Debug)]
struct SltError(String);

impl std::fmt::Display for SltError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SltError {}

impl VigilSlt {
    fn new() -> Result<Self, SltError> {
        let tmp = tempfile::tempdir().map_err(|e| SltError(e.to_string()))?;
        let db = Db::open_with(tmp.path(), test_options()).map_err(|e| SltError(e.to_string()))?;
        let dir = tmp.path().to_string_lossy().into_owned();
        Ok(VigilSlt {
            db: Arc::new(db),
            dir,
            _tmp: tmp,
        })
    }

    fn normalize(&self, s: &str) -> String {
        s.replace(&self.dir, "<DIR>")
            .replace(self.dir.trim_start_matches('/'), "<DIR>")
    }
}

fn column_type(t: &DataType) -> DefaultColumnType {
    if t.is_integer() {
        DefaultColumnType::Integer
    } else if t.is_floating() {
        DefaultColumnType::FloatingPoint
    } else {
        DefaultColumnType::Text
    }
}

fn cell(array: &dyn Array, row: usize, options: &FormatOptions<'_>) -> Result<String, SltError> {
    let formatter = ArrayFormatter::try_new(array, options).map_err(|e| SltError(e.to_string()))?;
    let s = formatter.value(row).to_string();
    Ok(if s.is_empty() {
        "(empty)".to_string()
    } else {
        s
    })
}

#[async_trait]
impl sqllogictest::AsyncDB for VigilSlt {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        let batches: Vec<RecordBatch> = self
            .db
            .query(sql)
            .await
            .map_err(|e| SltError(self.normalize(&e.to_string())))?;
        let lowered = sql.trim_start().to_ascii_lowercase();
        let is_query = lowered.starts_with("select")
            || lowered.starts_with("with")
            || lowered.starts_with("explain")
            || lowered.starts_with("show")
            || lowered.starts_with("values")
            || lowered.starts_with("flush")
            || lowered.starts_with("compact")
            || lowered.starts_with("describe");
        if !is_query {
            let count = batches
                .first()
                .filter(|b| b.num_rows() > 0 && b.num_columns() > 0)
                .and_then(|b| arrow::compute::cast(b.column(0), &DataType::UInt64).ok())
                .and_then(|c| {
                    c.as_any()
                        .downcast_ref::<arrow::array::UInt64Array>()
                        .map(|a| a.value(0))
                })
                .unwrap_or(0);
            return Ok(DBOutput::StatementComplete(count));
        }
        let options = FormatOptions::default().with_null("NULL");
        if lowered.starts_with("explain") && !lowered.starts_with("explain analyze") {
            let mut rows = Vec::new();
            for batch in &batches {
                for r in 0..batch.num_rows() {
                    if cell(batch.column(0), r, &options)? != "physical_plan" {
                        continue;
                    }
                    for line in cell(batch.column(1), r, &options)?.lines() {
                        rows.push(vec![self.normalize(line.trim_end())]);
                    }
                }
            }
            return Ok(DBOutput::Rows {
                types: vec![DefaultColumnType::Text],
                rows,
            });
        }
        let schema = match batches.first() {
            Some(b) => b.schema(),
            None => {
                return Ok(DBOutput::Rows {
                    types: vec![],
                    rows: vec![],
                });
            }
        };
        let types = schema
            .fields()
            .iter()
            .map(|f| column_type(f.data_type()))
            .collect();
        let mut rows = Vec::new();
        for batch in &batches {
            for r in 0..batch.num_rows() {
                let mut row = Vec::with_capacity(batch.num_columns());
                for c in 0..batch.num_columns() {
                    row.push(self.normalize(&cell(batch.column(c), r, &options)?));
                }
                rows.push(row);
            }
        }
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "vigil"
    }
}

fn slt_files() -> Vec<PathBuf> {
    let dir = crate::support::manifest_dir().join("slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/slt exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    files
}

#[test]
fn golden_sql_files() {
    let files = slt_files();
    assert!(!files.is_empty(), "no .slt files found");
    let bless = std::env::var_os("VIGIL_BLESS").is_some();
    let rt = crate::support::runtime();
    let mut failures = Vec::new();
    for file in &files {
        let mut runner = sqllogictest::Runner::new(|| async { VigilSlt::new() });
        let result: Result<(), String> = rt.block_on(async {
            if bless {
                runner
                    .update_test_file(
                        file,
                        " ",
                        sqllogictest::default_validator,
                        sqllogictest::default_normalizer,
                        sqllogictest::default_column_validator,
                    )
                    .await
                    .map_err(|e| e.to_string())
            } else {
                runner
                    .run_file_async(file)
                    .await
                    .map_err(|e| e.display(false).to_string())
            }
        });
        if let Err(e) = result {
            failures.push(format!("{}:\n{e}", file.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} golden file(s) failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
