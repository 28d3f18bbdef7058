//! A row-at-a-time builder for one batch of one kind, by column name.
//!
//! Columns are created on first use and padded with NULLs, so a decoder sets only what it
//! knows; the store fills the kind's other columns with NULL. Types are the store's canonical
//! ones (`docs/schema.md`).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, Float64Builder, Int32Builder, Int64Builder, ListBuilder, MapBuilder,
    MapFieldNames, RecordBatch, StringBuilder, TimestampNanosecondBuilder,
};
use arrow::datatypes::{Field, Schema};

use crate::Kind;

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
            // A map with no entries: the store's maps are never NULL-vs-empty sensitive.
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
}

/// Builds the rows of one kind. Call [`Rows::row`] first for every row, then the setters.
pub struct Rows {
    kind: Kind,
    ts: TimestampNanosecondBuilder,
    columns: BTreeMap<&'static str, Column>,
}

impl std::fmt::Debug for Rows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rows")
            .field("kind", &self.kind)
            .field("rows", &self.len())
            .finish_non_exhaustive()
    }
}

impl Rows {
    pub fn new(kind: Kind) -> Rows {
        Rows {
            kind,
            ts: TimestampNanosecondBuilder::new().with_timezone("UTC"),
            columns: BTreeMap::new(),
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

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

    /// The column `name` of the current row, padded with NULLs up to it.
    fn column(&mut self, name: &'static str, new: fn() -> Column) -> &mut Column {
        let row = self.ts.len() - 1;
        let column = self.columns.entry(name).or_insert_with(new);
        while column.len() < row {
            column.null();
        }
        debug_assert_eq!(column.len(), row, "column {name} set twice in one row");
        column
    }

    pub fn str(&mut self, name: &'static str, value: Option<&str>) {
        if let Column::Str(b) = self.column(name, || Column::Str(StringBuilder::new())) {
            b.append_option(value);
        }
    }

    pub fn f64(&mut self, name: &'static str, value: f64) {
        if let Column::F64(b) = self.column(name, || Column::F64(Float64Builder::new())) {
            b.append_value(value);
        }
    }

    pub fn i64(&mut self, name: &'static str, value: Option<i64>) {
        if let Column::I64(b) = self.column(name, || Column::I64(Int64Builder::new())) {
            b.append_option(value);
        }
    }

    pub fn i32(&mut self, name: &'static str, value: Option<i32>) {
        if let Column::I32(b) = self.column(name, || Column::I32(Int32Builder::new())) {
            b.append_option(value);
        }
    }

    pub fn list<'a>(&mut self, name: &'static str, values: impl IntoIterator<Item = &'a str>) {
        if let Column::List(b) = self.column(name, || {
            Column::List(ListBuilder::new(StringBuilder::new()))
        }) {
            for v in values {
                b.values().append_value(v);
            }
            b.append(true);
        }
    }

    pub fn map<'a>(
        &mut self,
        name: &'static str,
        entries: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) {
        if let Column::Map(b) = self.column(name, || {
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
        }) {
            for (k, v) in entries {
                b.keys().append_value(k);
                b.values().append_value(v);
            }
            // Cannot fail: keys and values were appended in pairs.
            let _ = b.append(true);
        }
    }

    /// The finished batch, or `None` when no row was added.
    pub fn finish(mut self) -> Option<RecordBatch> {
        let rows = self.len();
        if rows == 0 {
            return None;
        }
        let mut fields = vec![Field::new(
            "ts",
            arrow::datatypes::DataType::Timestamp(
                arrow::datatypes::TimeUnit::Nanosecond,
                Some("UTC".into()),
            ),
            false,
        )];
        let mut arrays: Vec<ArrayRef> = vec![Arc::new(self.ts.finish())];
        for (name, column) in &mut self.columns {
            while column.len() < rows {
                column.null();
            }
            let array = column.finish();
            fields.push(Field::new(*name, array.data_type().clone(), true));
            arrays.push(array);
        }
        // Cannot fail: every column has `rows` values and its own type.
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).ok()
    }
}
