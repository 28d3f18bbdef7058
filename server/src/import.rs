//! `vigil import`: Parquet, CSV and NDJSON files of one kind into the store, all or nothing
//! per file. Column names are the documented ones (`docs/schema.md`).
//!
//! - Parquet: any column types the store accepts (see `vigil_storage::validate`).
//! - CSV (with a header row): `ts` as RFC 3339 text or integer nanoseconds; map and list
//!   columns (`attributes`, `groups`, `source_ips`) as JSON text.
//! - NDJSON: one object per line; `ts` as RFC 3339 text or integer nanoseconds; maps as
//!   objects, lists as arrays.
//!
//! A value that does not fit its column (`nine` for an integer, a year outside what
//! nanoseconds can count) rejects the file with the column and the file's line named, in
//! every format; so does a file the Parquet decoder cannot read, even where the decoder
//! itself gives up by panicking.

use std::cell::Cell;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, ListBuilder, MapBuilder, RecordBatch, StringBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressStyle};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use vigil::schema::{ColumnType, column, columns, kind_schema, ts_type};
use vigil::{Db, SignalKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FileFormat {
    Auto,
    Parquet,
    Csv,
    Ndjson,
    /// Kubernetes audit log: one `audit.k8s.io` Event per line, as the API server's log
    /// backend writes it (kind `audit` only).
    K8sAudit,
}

impl FileFormat {
    fn resolve(self, path: &Path) -> Result<FileFormat> {
        if self != FileFormat::Auto {
            return Ok(self);
        }
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default()
            .to_ascii_lowercase();
        match ext.as_str() {
            "parquet" | "pq" => Ok(FileFormat::Parquet),
            "csv" => Ok(FileFormat::Csv),
            "ndjson" | "jsonl" | "json" => Ok(FileFormat::Ndjson),
            _ => bail!(
                "cannot tell the format of {} from its extension; pass --format",
                path.display()
            ),
        }
    }
}

/// The outcome of importing several files.
#[derive(Debug, Default)]
pub struct ImportReport {
    pub files_ok: usize,
    pub rows: usize,
    /// One message per rejected file.
    pub failures: Vec<String>,
}

pub fn import_files(
    db: &Db,
    kind: SignalKind,
    format: FileFormat,
    files: &[PathBuf],
) -> ImportReport {
    let total: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} importing {msg} [{bar:30}] {bytes}/{total_bytes} ({eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let mut report = ImportReport::default();
    for path in files {
        bar.set_message(
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let outcome = if format == FileFormat::K8sAudit {
            import_audit_log(db, kind, path)
        } else {
            read_file(path, kind, format)
                .and_then(|batches| db.write_all(kind, &batches).map_err(anyhow::Error::from))
        };
        match outcome {
            Ok(receipt) => {
                report.files_ok += 1;
                report.rows += receipt.rows;
            }
            Err(e) => report
                .failures
                .push(format!("{}: {}", path.display(), crate::report(&e))),
        }
        bar.inc(size);
    }
    bar.finish_and_clear();
    report
}

/// Imports a Kubernetes audit log file, all or nothing: any bad line rejects the file.
fn import_audit_log(db: &Db, kind: SignalKind, path: &Path) -> Result<vigil::WriteReceipt> {
    if kind != SignalKind::Audit {
        bail!("--format k8s-audit needs --kind audit, not {kind}");
    }
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let decoded = vigil_ingest::audit::decode_lines(&bytes)?;
    if decoded.rejected > 0 {
        bail!("{}", decoded.error_message());
    }
    let batches: Vec<RecordBatch> = decoded.batches.into_iter().map(|(_, b)| b).collect();
    if batches.is_empty() {
        bail!("no audit events in the file");
    }
    let receipt = db.write_all(kind, &batches)?;
    db.observe_pods(&decoded.pods)?;
    Ok(receipt)
}

/// Reads a whole file into batches (not yet validated against the kind).
pub fn read_file(path: &Path, kind: SignalKind, format: FileFormat) -> Result<Vec<RecordBatch>> {
    let format = format.resolve(path)?;
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    match format {
        FileFormat::Parquet => read_parquet(file),
        FileFormat::Csv => read_csv(file, kind),
        FileFormat::Ndjson => read_ndjson(file, kind),
        FileFormat::Auto => unreachable!("resolved above"),
        FileFormat::K8sAudit => bail!("Kubernetes audit logs are read by import_audit_log"),
    }
}

/// Rows per batch read from a file.
const BATCH_ROWS: usize = 8192;

fn read_parquet(file: File) -> Result<Vec<RecordBatch>> {
    // The Parquet decoder asserts on some damaged pages instead of returning an error; such a
    // file is as unreadable as one it refuses.
    catching_panics(|| {
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .context("not a readable Parquet file")?
            .with_batch_size(BATCH_ROWS)
            .build()?;
        reader.map(|b| b.context("reading Parquet rows")).collect()
    })
    .unwrap_or_else(|panic| Err(anyhow!("not a readable Parquet file: {panic}")))
}

thread_local! {
    /// Set while [`catching_panics`] runs on this thread: the panic is an error to report,
    /// not a crash to print.
    static CATCHING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`, turning a panic inside it into the panic's message. The process's panic hook
/// stays quiet for panics caught here and prints every other one as before.
fn catching_panics<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    static QUIET_HOOK: std::sync::Once = std::sync::Once::new();
    QUIET_HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !CATCHING.with(Cell::get) {
                default(info);
            }
        }));
    });
    let was = CATCHING.with(|c| c.replace(true));
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(was));
    outcome.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "the decoder panicked".to_string())
    })
}

/// Refuses a batch with a required column left empty, naming the file's line: the store's
/// own check would name the row within the batch.
fn check_required(
    kind: SignalKind,
    batch: &RecordBatch,
    line_of: impl Fn(usize) -> usize,
) -> Result<()> {
    for spec in columns(kind).filter(|c| c.required) {
        if let Some(array) = batch.column_by_name(spec.name)
            && let Some(row) = (0..array.len()).find(|&r| array.is_null(r))
        {
            bail!(
                "line {}: column `{}` is required and has no value",
                line_of(row),
                spec.name
            );
        }
    }
    Ok(())
}

fn read_csv(file: File, kind: SignalKind) -> Result<Vec<RecordBatch>> {
    let mut reader = BufReader::new(file);
    let mut header = String::new();
    reader
        .read_line(&mut header)
        .context("reading the CSV header")?;
    let names: Vec<String> = csv_header(&header);
    if names.is_empty() {
        bail!("the CSV file has no header row");
    }
    // Read every column as text, then convert each to the kind's type.
    let text_schema = Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(n, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    reader.rewind()?;
    let csv = arrow::csv::ReaderBuilder::new(Arc::clone(&text_schema))
        .with_header(true)
        .with_batch_size(BATCH_ROWS)
        .build(reader)?;
    let mut out = Vec::new();
    let mut first_row = 2; // line numbers: the header is line 1
    for batch in csv {
        let batch = batch.context("reading CSV rows")?;
        let converted = convert_text_columns(&batch, kind, first_row)?;
        check_required(kind, &converted, |row| first_row + row)?;
        out.push(converted);
        first_row += batch.num_rows();
    }
    Ok(out)
}

/// The column names of a CSV header line; a UTF-8 byte-order mark before the first is not
/// part of its name.
fn csv_header(line: &str) -> Vec<String> {
    line.trim_start_matches('\u{feff}')
        .trim_end_matches(['\r', '\n'])
        .split(',')
        .map(|s| s.trim().trim_matches('"').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Converts the text columns of a CSV batch to the kind's column types.
fn convert_text_columns(
    batch: &RecordBatch,
    kind: SignalKind,
    first_line: usize,
) -> Result<RecordBatch> {
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (field, array) in batch.schema().fields().iter().zip(batch.columns()) {
        let spec = column(kind, field.name()).ok_or_else(|| {
            anyhow!(
                "column `{}` is not a column of kind {kind} (see docs/schema.md)",
                field.name()
            )
        })?;
        let text = array.as_string::<i32>();
        let converted: ArrayRef = match spec.ty {
            ColumnType::Utf8 => Arc::clone(array),
            ColumnType::Timestamp => parse_timestamps(text, field.name(), first_line)?,
            ColumnType::StringMap => parse_json_maps(text, field.name(), first_line)?,
            ColumnType::StringList => parse_json_lists(text, field.name(), first_line)?,
            number => parse_numbers(text, number, field.name(), first_line)?,
        };
        fields.push(Field::new(
            field.name(),
            converted.data_type().clone(),
            true,
        ));
        columns.push(converted);
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// Numbers from text, refusing what does not parse or does not fit (`nine`, `1.5` for an
/// integer, `99999999999` for a 32-bit one) instead of storing NULL for it.
fn parse_numbers(
    text: &arrow::array::StringArray,
    ty: ColumnType,
    name: &str,
    first_line: usize,
) -> Result<ArrayRef> {
    let converted = arrow::compute::cast(text, &ty.data_type())?;
    if let Some(i) = (0..text.len()).find(|&i| text.is_valid(i) && converted.is_null(i)) {
        let expected = match ty {
            ColumnType::Int32 => "a 32-bit integer",
            ColumnType::Int64 => "a 64-bit integer",
            _ => "a number",
        };
        bail!(
            "column `{name}`, line {}: `{}` is not {expected}",
            first_line + i,
            text.value(i)
        );
    }
    Ok(converted)
}

fn parse_timestamps(
    text: &arrow::array::StringArray,
    name: &str,
    first_line: usize,
) -> Result<ArrayRef> {
    let mut out = Vec::with_capacity(text.len());
    for (i, v) in text.iter().enumerate() {
        let line = first_line + i;
        out.push(match v {
            None => None,
            Some(s) if s.bytes().all(|b| b.is_ascii_digit() || b == b'-') => {
                Some(s.parse::<i64>().with_context(|| {
                    format!("column `{name}`, line {line}: `{s}` is not a timestamp")
                })?)
            }
            Some(s) => Some(match vigil::time::parse_rfc3339(s) {
                Ok(ns) => ns,
                Err(vigil::ModelError::NotRfc3339(_)) => {
                    // Other forms Arrow reads (`2024-05-01 10:00:00`, no zone as UTC).
                    arrow::compute::kernels::cast_utils::string_to_timestamp_nanos(s).map_err(
                        |_| {
                            anyhow!(
                                "column `{name}`, line {line}: `{s}` is not an RFC 3339 timestamp"
                            )
                        },
                    )?
                }
                Err(e) => bail!("column `{name}`, line {line}: {e}"),
            }),
        });
    }
    let ns = Int64Array::from(out);
    Ok(arrow::compute::cast(&ns, &ts_type())?)
}

fn parse_json_maps(
    text: &arrow::array::StringArray,
    name: &str,
    first_line: usize,
) -> Result<ArrayRef> {
    let mut builder = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    for (i, v) in text.iter().enumerate() {
        match v {
            None => builder.append(false)?,
            Some(s) => {
                let value: serde_json::Value = serde_json::from_str(s).with_context(|| {
                    format!(
                        "column `{name}`, line {}: not a JSON object",
                        first_line + i
                    )
                })?;
                let object = value.as_object().ok_or_else(|| {
                    anyhow!(
                        "column `{name}`, line {}: not a JSON object",
                        first_line + i
                    )
                })?;
                for (k, v) in object {
                    builder.keys().append_value(k);
                    match v {
                        serde_json::Value::Null => builder.values().append_null(),
                        serde_json::Value::String(s) => builder.values().append_value(s),
                        other => builder.values().append_value(other.to_string()),
                    }
                }
                builder.append(true)?;
            }
        }
    }
    Ok(Arc::new(builder.finish()))
}

fn parse_json_lists(
    text: &arrow::array::StringArray,
    name: &str,
    first_line: usize,
) -> Result<ArrayRef> {
    let mut builder = ListBuilder::new(StringBuilder::new());
    for (i, v) in text.iter().enumerate() {
        match v {
            None => builder.append(false),
            Some(s) => {
                let value: serde_json::Value = serde_json::from_str(s).with_context(|| {
                    format!("column `{name}`, line {}: not a JSON array", first_line + i)
                })?;
                let items = value.as_array().ok_or_else(|| {
                    anyhow!("column `{name}`, line {}: not a JSON array", first_line + i)
                })?;
                for item in items {
                    match item {
                        serde_json::Value::String(s) => builder.values().append_value(s),
                        serde_json::Value::Null => builder.values().append_null(),
                        other => builder.values().append_value(other.to_string()),
                    }
                }
                builder.append(true);
            }
        }
    }
    Ok(Arc::new(builder.finish()))
}

fn read_ndjson(file: File, kind: SignalKind) -> Result<Vec<RecordBatch>> {
    let schema: SchemaRef = kind_schema(kind);
    // Every field nullable here: a missing required field is reported by the store's
    // validation, which names it, rather than as a decoder error.
    let loose = Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ));
    let decoder = || {
        arrow::json::ReaderBuilder::new(Arc::clone(&loose))
            .with_strict_mode(true)
            .with_batch_size(BATCH_ROWS)
            .build_decoder()
    };
    let mut reader = BufReader::new(file);
    let mut chunk = NdjsonChunk::default();
    let mut batches = decoder()?;
    let mut out = Vec::new();
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        let read = reader.read_until(b'\n', &mut line)?;
        if read == 0 {
            break;
        }
        number += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let before = batches.len();
        batches
            .decode(&line)
            .map_err(|e| anyhow!("line {number}: {e}"))?;
        if batches.has_partial_record() {
            bail!("line {number}: not a whole JSON object (NDJSON has one object per line)");
        }
        chunk.add(number, &line, batches.len() - before);
        if batches.len() >= BATCH_ROWS {
            out.push(chunk.flush(kind, &mut batches, decoder)?);
        }
    }
    if !batches.is_empty() {
        out.push(chunk.flush(kind, &mut batches, decoder)?);
    }
    Ok(out)
}

/// The lines behind the rows an NDJSON decoder holds, to name the line of a bad value.
#[derive(Default)]
struct NdjsonChunk {
    /// The file line of each buffered row.
    row_lines: Vec<usize>,
    /// Each line buffered, with its number.
    lines: Vec<(usize, Vec<u8>)>,
}

impl NdjsonChunk {
    fn add(&mut self, number: usize, line: &[u8], rows: usize) {
        self.row_lines.extend(std::iter::repeat_n(number, rows));
        self.lines.push((number, line.to_vec()));
    }

    /// The buffered rows as a batch. A value that does not fit its column surfaces only here,
    /// for the whole batch: the lines are decoded again one by one to find the first bad one.
    fn flush(
        &mut self,
        kind: SignalKind,
        decoder: &mut arrow::json::reader::Decoder,
        fresh: impl Fn() -> std::result::Result<arrow::json::reader::Decoder, arrow::error::ArrowError>,
    ) -> Result<RecordBatch> {
        let batch = match decoder.flush() {
            Ok(batch) => batch.ok_or_else(|| anyhow!("no rows decoded"))?,
            Err(e) => {
                for (number, line) in &self.lines {
                    let mut alone = fresh()?;
                    if let Err(e) = alone.decode(line).and_then(|_| alone.flush()) {
                        bail!("line {number}: {e}");
                    }
                }
                bail!("reading NDJSON: {e}");
            }
        };
        check_required(kind, &batch, |row| self.row_lines[row])?;
        self.row_lines.clear();
        self.lines.clear();
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use vigil::WriteLog;

    use super::*;

    #[test]
    fn a_panic_inside_a_reader_becomes_its_message_and_later_panics_still_print() {
        let caught = catching_panics(|| -> u32 { panic!("assertion failed: bit width") });
        assert_eq!(caught, Err("assertion failed: bit width".to_string()));
        let formatted = catching_panics(|| -> u32 { panic!("index {} out of range", 7) });
        assert_eq!(formatted, Err("index 7 out of range".to_string()));
        assert_eq!(catching_panics(|| 5), Ok(5));
        // Outside, a panic is a panic again.
        assert!(!CATCHING.with(Cell::get));
    }

    #[test]
    fn each_imported_file_is_one_observed_write_and_a_bad_file_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = crate::test_support::quiet_db(&dir.path().join("store"));
        let log = Arc::new(WriteLog::default());
        db.observe_writes(Arc::clone(&log) as _);

        let metrics = dir.path().join("metrics.ndjson");
        std::fs::write(
            &metrics,
            "{\"ts\":\"2026-01-01T00:00:00Z\",\"pod\":\"a\",\"name\":\"cpu\",\"value\":1.5}\n\
             {\"ts\":\"2026-01-01T00:00:10Z\",\"pod\":\"a\",\"name\":\"cpu\",\"value\":2.5}\n",
        )
        .expect("write");
        let broken = dir.path().join("broken.ndjson");
        std::fs::write(
            &broken,
            "{\"ts\":\"2026-01-01T00:00:00Z\",\"name\":\"cpu\"}\n",
        )
        .expect("write");
        let report = import_files(
            &db,
            SignalKind::Metric,
            FileFormat::Auto,
            &[metrics, broken],
        );
        assert_eq!(
            (report.files_ok, report.rows),
            (1, 2),
            "{:?}",
            report.failures
        );
        let audit = dir.path().join("audit.log");
        std::fs::write(
            &audit,
            "{\"kind\":\"Event\",\"apiVersion\":\"audit.k8s.io/v1\",\"level\":\"Metadata\",\
             \"auditID\":\"1\",\"stage\":\"ResponseComplete\",\"verb\":\"get\",\
             \"requestURI\":\"/api/v1/namespaces/shop/secrets/db\",\
             \"user\":{\"username\":\"system:serviceaccount:shop:web\"},\
             \"objectRef\":{\"resource\":\"secrets\",\"namespace\":\"shop\",\"name\":\"db\"},\
             \"responseStatus\":{\"code\":200},\
             \"requestReceivedTimestamp\":\"2026-01-01T00:00:00.000000Z\",\
             \"stageTimestamp\":\"2026-01-01T00:00:00.001000Z\"}\n",
        )
        .expect("write");
        let report = import_files(&db, SignalKind::Audit, FileFormat::K8sAudit, &[audit]);
        assert_eq!(
            (report.files_ok, report.rows),
            (1, 1),
            "{:?}",
            report.failures
        );

        let writes = log.writes();
        let seen: Vec<(SignalKind, usize)> = writes.iter().map(|w| (w.kind, w.rows)).collect();
        assert_eq!(seen, [(SignalKind::Metric, 2), (SignalKind::Audit, 1)]);
        assert!(writes.iter().all(|w| w.canonical));
    }
}
