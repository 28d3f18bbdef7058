//! Printing query results: an aligned table, CSV, or a JSON array of objects.

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
            let mut writer = arrow::json::ArrayWriter::new(&mut *out);
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            writer.write_batches(&refs)?;
            writer.finish()?;
            drop(writer);
            writeln!(out)?;
        }
    }
    Ok(())
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
