//! Checks a record batch offered for writing against its kind's schema and converts it to the
//! canonical layout: every column of the kind, in schema order, with the canonical types.
//!
//! Accepted without loss: any string type for `VARCHAR`, any timestamp unit or zone (and
//! `Int64` nanoseconds) for `ts`, integers and `Float32` for `DOUBLE`, narrower integers for
//! integer columns, string-typed lists and maps. Anything else is an error naming the column.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, new_null_array};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, TimeUnit};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use arrow::util::display::FormatOptions;

use crate::SignalKind;
use crate::error::{Result, StorageError};
use crate::schema::{ColumnType, column, columns, kind_schema};

/// Converts `batch` to the canonical schema of `kind`, or says which column is wrong.
pub fn normalize(kind: SignalKind, batch: &RecordBatch) -> Result<RecordBatch> {
    let invalid = |column: &str, problem: String| StorageError::InvalidBatch {
        kind: kind.as_str(),
        column: column.to_string(),
        problem,
    };

    let input = batch.schema();
    for field in input.fields() {
        if column(kind, field.name()).is_none() {
            let known: Vec<&str> = columns(kind).map(|c| c.name).collect();
            return Err(invalid(
                field.name(),
                format!(
                    "unknown column for kind {kind}; expected some of: {}",
                    known.join(", ")
                ),
            ));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for field in input.fields() {
        if !seen.insert(field.name()) {
            return Err(invalid(field.name(), "appears more than once".to_string()));
        }
    }

    let rows = batch.num_rows();
    let mut out: Vec<ArrayRef> = Vec::with_capacity(input.fields().len());
    for spec in columns(kind) {
        let target = spec.ty.data_type();
        let array = match input.index_of(spec.name) {
            Err(_) if spec.required => {
                return Err(invalid(spec.name, "required column is missing".to_string()));
            }
            Err(_) => new_null_array(&target, rows),
            Ok(i) => {
                let array = batch.column(i);
                let converted = convert(spec.ty, array).map_err(|p| invalid(spec.name, p))?;
                if spec.required && converted.null_count() > 0 {
                    let first = (0..rows).find(|&r| converted.is_null(r)).unwrap_or(0);
                    return Err(invalid(
                        spec.name,
                        format!("required column has a null value (first at row {first})"),
                    ));
                }
                converted
            }
        };
        out.push(array);
    }
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(RecordBatch::try_new_with_options(
        kind_schema(kind),
        out,
        &options,
    )?)
}

/// Converts one column to its canonical type, refusing lossy or meaningless conversions.
fn convert(ty: ColumnType, array: &ArrayRef) -> std::result::Result<ArrayRef, String> {
    let from = array.data_type();
    let target = ty.data_type();
    if from == &target {
        return Ok(Arc::clone(array));
    }
    let accepted = match ty {
        ColumnType::Timestamp => matches!(from, DataType::Timestamp(_, _) | DataType::Int64),
        ColumnType::Utf8 => is_string(from),
        ColumnType::Float64 => {
            from.is_numeric()
                && !matches!(from, DataType::Decimal128(..) | DataType::Decimal256(..))
        }
        ColumnType::Int64 | ColumnType::Int32 => from.is_integer(),
        ColumnType::StringList => match from {
            DataType::List(f) | DataType::LargeList(f) | DataType::ListView(f) => {
                is_string(f.data_type())
            }
            DataType::Null => true,
            _ => false,
        },
        ColumnType::StringMap => match from {
            DataType::Map(entries, _) => match entries.data_type() {
                DataType::Struct(fields) if fields.len() == 2 => {
                    is_string(fields[0].data_type()) && is_string(fields[1].data_type())
                }
                _ => false,
            },
            DataType::Null => true,
            _ => false,
        },
    } || from == &DataType::Null;
    if !accepted {
        return Err(format!("has type {from}, expected {}", ty.sql_name()));
    }
    let array = match (ty, from) {
        // A bare integer timestamp is nanoseconds since the epoch.
        (ColumnType::Timestamp, DataType::Int64) => cast_with_options(
            array,
            &DataType::Timestamp(TimeUnit::Nanosecond, None),
            &strict(),
        )
        .map_err(|e| e.to_string())?,
        _ => Arc::clone(array),
    };
    cast_with_options(&array, &target, &strict())
        .map_err(|e| format!("cannot convert {from} to {}: {e}", ty.sql_name()))
}

fn is_string(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => true,
        DataType::Dictionary(_, v) => is_string(v),
        _ => false,
    }
}

/// Casting that fails on overflow instead of producing nulls.
fn strict() -> CastOptions<'static> {
    CastOptions {
        safe: false,
        format_options: FormatOptions::default(),
    }
}

#[cfg(test)]
mod tests;
