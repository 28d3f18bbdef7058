//! Printing query results: an aligned table, CSV, or a JSON array of objects.
//!
//! JSON has no NaN or infinities: a floating-point NaN, `Infinity` or `-Infinity` is written
//! as that string (as protobuf's JSON mapping writes them), never as `null`, which is NULL.

use std::io::Write;

use anyhow::Result;
use arrow::array::{Array, RecordBatch};
use clap::ValueEnum;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
}

pub fn print_batches(
    batches: &[RecordBatch],
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<()> {
    match format {
        OutputFormat::Table => {
            writeln!(
                out,
                "{}",
                arrow::util::pretty::pretty_format_batches(batches)?
            )?;
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            writeln!(out, "({rows} row{})", if rows == 1 { "" } else { "s" })?;
        }
        OutputFormat::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *out);
            for batch in batches {
                writer.write(&flatten_nested(batch)?)?;
            }
        }
        OutputFormat::Json => {
            let mut rows: Vec<serde_json::Value> = Vec::new();
            for batch in batches {
                let mut writer = arrow::json::ArrayWriter::new(Vec::new());
                writer.write(batch)?;
                writer.finish()?;
                let mut objects: Vec<serde_json::Map<String, serde_json::Value>> =
                    serde_json::from_slice(&writer.into_inner()).unwrap_or_default();
                for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
                    for (row, object) in objects.iter_mut().enumerate() {
                        if let Some(text) = non_finite(column.as_ref(), row) {
                            object.insert(field.name().clone(), text);
                        }
                    }
                }
                rows.extend(objects.into_iter().map(serde_json::Value::Object));
            }
            serde_json::to_writer(&mut *out, &rows)?;
            writeln!(out)?;
        }
    }
    Ok(())
}

/// A floating-point NaN or infinity at `row` of `column`, as the JSON string that stands for
/// it (`"NaN"`, `"Infinity"`, `"-Infinity"`); `None` for anything else.
pub fn non_finite(column: &dyn Array, row: usize) -> Option<serde_json::Value> {
    use arrow::array::AsArray;
    use arrow::datatypes::{DataType, Float32Type, Float64Type};

    if column.is_null(row) {
        return None;
    }
    let value = match column.data_type() {
        DataType::Float64 => column.as_primitive::<Float64Type>().value(row),
        DataType::Float32 => f64::from(column.as_primitive::<Float32Type>().value(row)),
        _ => return None,
    };
    let text = if value.is_nan() {
        "NaN"
    } else if value == f64::INFINITY {
        "Infinity"
    } else if value == f64::NEG_INFINITY {
        "-Infinity"
    } else {
        return None;
    };
    Some(serde_json::Value::String(text.to_string()))
}

/// CSV has no lists or maps: such columns are written as their display text
/// (`{method: GET}`, `[a, b]`).
fn flatten_nested(batch: &RecordBatch) -> Result<RecordBatch> {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, StringBuilder};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::util::display::{ArrayFormatter, FormatOptions};

    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| f.data_type().is_nested())
    {
        return Ok(batch.clone());
    }
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if field.data_type().is_nested() {
            let formatter = ArrayFormatter::try_new(column.as_ref(), &FormatOptions::default())?;
            let mut text = StringBuilder::new();
            for row in 0..column.len() {
                if column.is_null(row) {
                    text.append_null();
                } else {
                    text.append_value(formatter.value(row).to_string());
                }
            }
            fields.push(Field::new(field.name(), DataType::Utf8, true));
            columns.push(Arc::new(text.finish()));
        } else {
            fields.push(field.as_ref().clone());
            columns.push(Arc::clone(column));
        }
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}
