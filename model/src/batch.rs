//! A row-at-a-time builder of one kind's batch, by column name.
//!
//! Columns are created on first use and padded with NULLs, so a producer (a decoder, a
//! generator) sets only what it knows. [`BatchBuilder::finish`] returns the kind's canonical
//! batch: every column of the kind, in schema order, with its canonical type, NULL where
//! nothing was set. A name the kind does not have, a column set with two types, or a required
//! column left NULL is an error naming the column.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayBuilder, ArrayRef, Float64Builder, Int32Builder, Int64Builder, ListBuilder,
    MapBuilder, MapFieldNames, RecordBatch, StringBuilder, TimestampNanosecondBuilder,
    new_null_array,
};

use crate::error::{ModelError, Result};
use crate::kind::SignalKind;
use crate::schema::{TS_TZ, columns, kind_schema};

enum Column {
    Str(StringBuilder),
    F64(Float64Builder),
    I64(Int64Builder),
    I32(Int32Builder),
    List(ListBuilder<StringBuilder>),
    Map(MapBuilder<StringBuilder, StringBuilder>),
}

impl Column {
    fn len(&self) -> usize {
        match self {
            Column::Str(b) => b.len(),
            Column::F64(b) => b.len(),
            Column::I64(b) => b.len(),
            Column::I32(b) => b.len(),
            Column::List(b) => b.len(),
            Column::Map(b) => b.len(),
        }
    }

    fn null(&mut self) {
        match self {
            Column::Str(b) => b.append_null(),
            Column::F64(b) => b.append_null(),
            Column::I64(b) => b.append_null(),
            Column::I32(b) => b.append_null(),
            Column::List(b) => b.append_null(),
            // Appending a NULL entry cannot fail: no keys or values are pending.
            Column::Map(b) => {
                let _ = b.append(false);
            }
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Column::Str(b) => Arc::new(b.finish()),
            Column::F64(b) => Arc::new(b.finish()),
            Column::I64(b) => Arc::new(b.finish()),
            Column::I32(b) => Arc::new(b.finish()),
            Column::List(b) => Arc::new(b.finish()),
            Column::Map(b) => Arc::new(b.finish()),
        }
    }

    fn map() -> Column {
        // The field names of the canonical `Map<Utf8, Utf8>` (`schema::string_map_type`).
        let names = MapFieldNames {
            entry: "entries".into(),
            key: "keys".into(),
            value: "values".into(),
        };
        Column::Map(MapBuilder::new(
            Some(names),
            StringBuilder::new(),
            StringBuilder::new(),
        ))
    }
}

/// Builds the rows of one kind. Call [`BatchBuilder::row`] first for every row, then the
/// setters of the columns it has.
pub struct BatchBuilder {
    kind: SignalKind,
    ts: TimestampNanosecondBuilder,
    columns: BTreeMap<&'static str, Column>,
    /// The first column a setter of another type than its first one was called on.
    mistyped: Option<&'static str>,
}

impl std::fmt::Debug for BatchBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchBuilder")
            .field("kind", &self.kind)
            .field("rows", &self.len())
            .finish_non_exhaustive()
    }
}

/// Picks the builder variant of a setter, or remembers that the column has another type.
macro_rules! builder_of {
    ($self:ident, $name:ident, $variant:ident, $new:expr) => {{
        let row = $self.ts.len().saturating_sub(1);
        let column = $self.columns.entry($name).or_insert_with(|| $new);
        while column.len() < row {
            column.null();
        }
        debug_assert_eq!(column.len(), row, "column {} set twice in one row", $name);
        match column {
            Column::$variant(b) => Some(b),
            _ => {
                $self.mistyped.get_or_insert($name);
                None
            }
        }
    }};
}

impl BatchBuilder {
    pub fn new(kind: SignalKind) -> BatchBuilder {
        BatchBuilder {
            kind,
            ts: TimestampNanosecondBuilder::new().with_timezone(TS_TZ),
            columns: BTreeMap::new(),
            mistyped: None,
        }
    }

    pub fn kind(&self) -> SignalKind {
        self.kind
    }

    /// Rows started so far.
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Starts a row observed at `ts_ns` (nanoseconds since the Unix epoch).
    pub fn row(&mut self, ts_ns: i64) {
        self.ts.append_value(ts_ns);
    }

    pub fn str(&mut self, name: &'static str, value: Option<&str>) {
        if let Some(b) = builder_of!(self, name, Str, Column::Str(StringBuilder::new())) {
            b.append_option(value);
        }
    }

    pub fn f64(&mut self, name: &'static str, value: impl Into<Option<f64>>) {
        if let Some(b) = builder_of!(self, name, F64, Column::F64(Float64Builder::new())) {
            b.append_option(value.into());
        }
    }

    pub fn i64(&mut self, name: &'static str, value: impl Into<Option<i64>>) {
        if let Some(b) = builder_of!(self, name, I64, Column::I64(Int64Builder::new())) {
            b.append_option(value.into());
        }
    }

    pub fn i32(&mut self, name: &'static str, value: impl Into<Option<i32>>) {
        if let Some(b) = builder_of!(self, name, I32, Column::I32(Int32Builder::new())) {
            b.append_option(value.into());
        }
    }

    /// A list of strings (an empty list, not NULL, when `values` is empty).
    pub fn list<S: AsRef<str>>(&mut self, name: &'static str, values: impl IntoIterator<Item = S>) {
        let new = Column::List(ListBuilder::new(StringBuilder::new()));
        if let Some(b) = builder_of!(self, name, List, new) {
            for v in values {
                b.values().append_value(v);
            }
            b.append(true);
        }
    }

    /// A map of strings to strings.
    pub fn map<K: AsRef<str>, V: AsRef<str>>(
        &mut self,
        name: &'static str,
        entries: impl IntoIterator<Item = (K, V)>,
    ) {
        if let Some(b) = builder_of!(self, name, Map, Column::map()) {
            for (k, v) in entries {
                b.keys().append_value(k);
                b.values().append_value(v);
            }
            // Cannot fail: keys and values were appended in pairs.
            let _ = b.append(true);
        }
    }

    /// The rows so far as one batch in the kind's canonical schema; the builder starts over
    /// empty (also when it refuses).
    pub fn finish(&mut self) -> Result<RecordBatch> {
        let rows = self.len();
        let kind = self.kind;
        let invalid = |column: &str, problem: String| ModelError::InvalidColumn {
            kind: kind.as_str(),
            column: column.to_string(),
            problem,
        };
        let mut set = std::mem::take(&mut self.columns);
        let ts: ArrayRef = Arc::new(self.ts.finish());
        if let Some(name) = self.mistyped.take() {
            return Err(invalid(name, "set with values of two types".into()));
        }
        let mut arrays = Vec::new();
        for spec in columns(kind) {
            let target = spec.ty.data_type();
            let array = if spec.name == "ts" {
                Arc::clone(&ts)
            } else {
                match set.remove(spec.name) {
                    None => new_null_array(&target, rows),
                    Some(mut column) => {
                        while column.len() < rows {
                            column.null();
                        }
                        column.finish()
                    }
                }
            };
            if array.data_type() != &target {
                return Err(invalid(
                    spec.name,
                    format!("built as {}, the schema says {target}", array.data_type()),
                ));
            }
            if spec.required && array.null_count() > 0 {
                let first = (0..rows).find(|&r| array.is_null(r)).unwrap_or(0);
                return Err(invalid(
                    spec.name,
                    format!("required column has no value (first at row {first})"),
                ));
            }
            arrays.push(array);
        }
        if let Some(name) = set.keys().next() {
            let known: Vec<&str> = columns(kind).map(|c| c.name).collect();
            return Err(invalid(
                name,
                format!(
                    "not a column of kind {kind}; expected some of: {}",
                    known.join(", ")
                ),
            ));
        }
        Ok(RecordBatch::try_new(kind_schema(kind), arrays)?)
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, MapArray};
    use arrow::datatypes::{Float64Type, TimestampNanosecondType};

    use super::*;

    #[test]
    fn unset_columns_are_null_and_sparse_ones_padded() {
        let mut b = BatchBuilder::new(SignalKind::Metric);
        b.row(10);
        b.str("name", Some("cpu"));
        b.f64("value", 0.5);
        b.row(20);
        b.str("name", Some("mem"));
        b.f64("value", 2.0);
        b.str("pod", Some("web-1"));
        b.map("attributes", [("zone", "a")]);
        b.row(30);
        b.str("name", Some("cpu"));
        b.f64("value", 0.7);
        let batch = b.finish().unwrap();
        assert_eq!(batch.schema(), kind_schema(SignalKind::Metric));
        assert_eq!(batch.num_rows(), 3);
        let ts = batch.column_by_name("ts").unwrap();
        assert_eq!(
            ts.as_primitive::<TimestampNanosecondType>().values(),
            &[10, 20, 30]
        );
        let pod = batch.column_by_name("pod").unwrap().as_string::<i32>();
        assert_eq!(
            pod.iter().collect::<Vec<_>>(),
            [None, Some("web-1"), None],
            "padded before and after the row that set it"
        );
        let value = batch.column_by_name("value").unwrap();
        assert_eq!(
            value.as_primitive::<Float64Type>().values(),
            &[0.5, 2.0, 0.7]
        );
        let attributes = batch.column_by_name("attributes").unwrap();
        let attributes = attributes.as_any().downcast_ref::<MapArray>().unwrap();
        assert!(attributes.is_null(0) && attributes.is_valid(1) && attributes.is_null(2));
        assert_eq!(attributes.value(1).len(), 1);
        assert_eq!(batch.column_by_name("unit").unwrap().null_count(), 3);
        assert!(b.is_empty(), "finish starts over");
    }

    #[test]
    fn optional_and_plain_values_take_the_same_setter() {
        let mut b = BatchBuilder::new(SignalKind::Log);
        b.row(1);
        b.i32("severity_number", 9);
        b.row(2);
        b.i32("severity_number", None);
        let batch = b.finish().unwrap();
        let sev = batch.column_by_name("severity_number").unwrap();
        assert_eq!(
            sev.as_primitive::<arrow::datatypes::Int32Type>().value(0),
            9
        );
        assert!(sev.is_null(1));
    }

    #[test]
    fn mistakes_are_refused_by_column() {
        let mut b = BatchBuilder::new(SignalKind::Metric);
        b.row(1);
        b.str("name", Some("cpu"));
        let e = b.finish().unwrap_err().to_string();
        assert!(e.contains("`value`") && e.contains("required"), "{e}");

        b.row(1);
        b.str("name", Some("cpu"));
        b.f64("value", 1.0);
        b.str("no_such_column", Some("x"));
        let e = b.finish().unwrap_err().to_string();
        assert!(
            e.contains("`no_such_column`") && e.contains("not a column"),
            "{e}"
        );

        b.row(1);
        b.str("name", Some("cpu"));
        b.i64("value", 1);
        let e = b.finish().unwrap_err().to_string();
        assert!(e.contains("`value`") && e.contains("Int64"), "{e}");

        b.row(1);
        b.str("name", Some("cpu"));
        b.f64("value", 1.0);
        b.row(2);
        b.i64("name", 3);
        b.f64("value", 1.0);
        let e = b.finish().unwrap_err().to_string();
        assert!(e.contains("`name`") && e.contains("two types"), "{e}");

        // After every refusal the builder is empty and usable again.
        b.row(5);
        b.str("name", Some("cpu"));
        b.f64("value", 1.0);
        let ok = b.finish().unwrap();
        assert_eq!(ok.num_rows(), 1);
        let ts = ok.column_by_name("ts").unwrap();
        assert_eq!(ts.as_primitive::<TimestampNanosecondType>().value(0), 5);
    }
}
