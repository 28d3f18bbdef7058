//! Column builders for one batch of one kind, finished into the kind's canonical schema.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Builder, Int32Builder, Int64Builder, ListBuilder, RecordBatch, StringBuilder,
    new_null_array,
};
use vigil_storage::SignalKind;
use vigil_storage::schema::{ColumnType, columns, kind_schema};

/// Builders for the columns a generator fills; the rest are NULL.
pub struct Columns {
    kind: SignalKind,
    ts: Vec<i64>,
    strings: BTreeMap<&'static str, StringBuilder>,
    floats: BTreeMap<&'static str, Float64Builder>,
    ints: BTreeMap<&'static str, Int64Builder>,
    int32s: BTreeMap<&'static str, Int32Builder>,
    lists: BTreeMap<&'static str, ListBuilder<StringBuilder>>,
}

impl Columns {
    pub fn new(kind: SignalKind) -> Self {
        Columns {
            kind,
            ts: Vec::new(),
            strings: BTreeMap::new(),
            floats: BTreeMap::new(),
            ints: BTreeMap::new(),
            int32s: BTreeMap::new(),
            lists: BTreeMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.ts.len()
    }

    /// Starts a row at `ts`; every other column must then be set (or left NULL) for it.
    pub fn row(&mut self, ts: i64) {
        self.ts.push(ts);
    }

    fn pad<B: Padding>(builder: &mut B, rows: usize) {
        while builder.count() < rows {
            builder.null();
        }
    }

    pub fn str(&mut self, name: &'static str, value: Option<&str>) {
        let rows = self.ts.len();
        let b = self.strings.entry(name).or_default();
        Self::pad(b, rows - 1);
        b.append_option(value);
    }

    pub fn f64(&mut self, name: &'static str, value: f64) {
        let rows = self.ts.len();
        let b = self.floats.entry(name).or_default();
        Self::pad(b, rows - 1);
        b.append_value(value);
    }

    pub fn i64(&mut self, name: &'static str, value: i64) {
        let rows = self.ts.len();
        let b = self.ints.entry(name).or_default();
        Self::pad(b, rows - 1);
        b.append_value(value);
    }

    pub fn i32(&mut self, name: &'static str, value: i32) {
        let rows = self.ts.len();
        let b = self.int32s.entry(name).or_default();
        Self::pad(b, rows - 1);
        b.append_value(value);
    }

    pub fn list(&mut self, name: &'static str, values: &[&str]) {
        let rows = self.ts.len();
        let b = self
            .lists
            .entry(name)
            .or_insert_with(|| ListBuilder::new(StringBuilder::new()));
        Self::pad(b, rows - 1);
        for v in values {
            b.values().append_value(v);
        }
        b.append(true);
    }

    /// Finishes the batch in the kind's canonical schema and starts an empty one.
    pub fn finish(&mut self) -> RecordBatch {
        let rows = self.ts.len();
        let schema = kind_schema(self.kind);
        let mut arrays: Vec<ArrayRef> = Vec::new();
        for spec in columns(self.kind) {
            let array: ArrayRef = match spec.ty {
                ColumnType::Timestamp => Arc::new(
                    arrow::array::TimestampNanosecondArray::from(std::mem::take(&mut self.ts))
                        .with_timezone("UTC"),
                ),
                ColumnType::Utf8 => finish_or_null(self.strings.get_mut(spec.name), rows, spec.ty),
                ColumnType::Float64 => {
                    finish_or_null(self.floats.get_mut(spec.name), rows, spec.ty)
                }
                ColumnType::Int64 => finish_or_null(self.ints.get_mut(spec.name), rows, spec.ty),
                ColumnType::Int32 => finish_or_null(self.int32s.get_mut(spec.name), rows, spec.ty),
                ColumnType::StringList => {
                    finish_or_null(self.lists.get_mut(spec.name), rows, spec.ty)
                }
                ColumnType::StringMap => new_null_array(&spec.ty.data_type(), rows),
            };
            arrays.push(array);
        }
        RecordBatch::try_new(schema, arrays).expect("generated columns match the kind's schema")
    }
}

fn finish_or_null<B: Padding>(builder: Option<&mut B>, rows: usize, ty: ColumnType) -> ArrayRef {
    match builder {
        Some(b) => {
            Columns::pad(b, rows);
            b.finish_array()
        }
        None => new_null_array(&ty.data_type(), rows),
    }
}

/// What the padding logic needs of a builder.
pub trait Padding {
    fn count(&self) -> usize;
    fn null(&mut self);
    fn finish_array(&mut self) -> ArrayRef;
}

macro_rules! padding {
    ($t:ty) => {
        impl Padding for $t {
            fn count(&self) -> usize {
                arrow::array::ArrayBuilder::len(self)
            }
            fn null(&mut self) {
                self.append_null();
            }
            fn finish_array(&mut self) -> ArrayRef {
                Arc::new(self.finish())
            }
        }
    };
}
padding!(StringBuilder);
padding!(Float64Builder);
padding!(Int64Builder);
padding!(Int32Builder);
padding!(ListBuilder<StringBuilder>);
