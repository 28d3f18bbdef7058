use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, DictionaryArray, Float64Array, Int64Array, StringArray,
    TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, TimestampNanosecondType};
use arrow::record_batch::RecordBatch;

use super::normalize;
use crate::SignalKind;
use crate::schema::kind_schema;

fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect();
    RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .unwrap()
}

fn error(kind: SignalKind, b: &RecordBatch) -> String {
    normalize(kind, b).unwrap_err().to_string()
}

#[test]
fn fills_missing_optional_columns_and_orders_them() {
    let b = batch(vec![
        ("value", Arc::new(Float64Array::from(vec![0.5, 0.7]))),
        ("name", Arc::new(StringArray::from(vec!["cpu", "cpu"]))),
        ("ts", Arc::new(Int64Array::from(vec![1_000, 2_000]))),
        ("pod", Arc::new(StringArray::from(vec![Some("a"), None]))),
    ]);
    let out = normalize(SignalKind::Metric, &b).unwrap();
    assert_eq!(out.schema(), kind_schema(SignalKind::Metric));
    let ts = out
        .column_by_name("ts")
        .unwrap()
        .as_primitive::<TimestampNanosecondType>();
    assert_eq!(ts.values().to_vec(), vec![1_000, 2_000]);
    assert_eq!(out.column_by_name("namespace").unwrap().null_count(), 2);
    assert_eq!(out.column_by_name("pod").unwrap().null_count(), 1);
}

#[test]
fn converts_timestamp_units_and_zones_to_utc_nanoseconds() {
    let ts = TimestampMillisecondArray::from(vec![1_700_000_000_123]).with_timezone("+02:00");
    let b = batch(vec![
        ("ts", Arc::new(ts)),
        ("reason", Arc::new(StringArray::from(vec!["Pulled"]))),
    ]);
    let out = normalize(SignalKind::Event, &b).unwrap();
    let ts = out.column(0).as_primitive::<TimestampNanosecondType>();
    assert_eq!(ts.value(0), 1_700_000_000_123_000_000);
    assert_eq!(ts.timezone(), Some("UTC"));
}

#[test]
fn accepts_dictionary_strings() {
    let verbs: DictionaryArray<Int32Type> = vec!["get", "list", "get"].into_iter().collect();
    let b = batch(vec![
        ("ts", Arc::new(Int64Array::from(vec![1, 2, 3]))),
        ("verb", Arc::new(verbs)),
    ]);
    let out = normalize(SignalKind::Audit, &b).unwrap();
    let verb = out.column_by_name("verb").unwrap();
    assert_eq!(verb.data_type(), &DataType::Utf8);
    assert_eq!(verb.as_string::<i32>().value(1), "list");
}

#[test]
fn missing_ts_names_the_column() {
    let b = batch(vec![(
        "reason",
        Arc::new(StringArray::from(vec!["Pulled"])),
    )]);
    let e = error(SignalKind::Event, &b);
    assert!(
        e.contains("column `ts`") && e.contains("required column is missing"),
        "{e}"
    );
}

#[test]
fn wrong_type_names_the_column_and_both_types() {
    let b = batch(vec![
        ("ts", Arc::new(Int64Array::from(vec![1]))),
        ("name", Arc::new(StringArray::from(vec!["cpu"]))),
        ("value", Arc::new(StringArray::from(vec!["high"]))),
    ]);
    let e = error(SignalKind::Metric, &b);
    assert!(
        e.contains("column `value`") && e.contains("Utf8") && e.contains("DOUBLE"),
        "{e}"
    );
}

#[test]
fn unknown_column_is_refused_rather_than_dropped() {
    let b = batch(vec![
        ("ts", Arc::new(Int64Array::from(vec![1]))),
        ("reason", Arc::new(StringArray::from(vec!["Pulled"]))),
        ("reasn", Arc::new(StringArray::from(vec!["typo"]))),
    ]);
    let e = error(SignalKind::Event, &b);
    assert!(
        e.contains("column `reasn`") && e.contains("unknown column"),
        "{e}"
    );
}

#[test]
fn null_in_required_column_names_the_row() {
    let b = batch(vec![
        (
            "ts",
            Arc::new(Int64Array::from(vec![Some(1), None, Some(3)])),
        ),
        ("reason", Arc::new(StringArray::from(vec!["a", "b", "c"]))),
    ]);
    let e = error(SignalKind::Event, &b);
    assert!(e.contains("column `ts`") && e.contains("row 1"), "{e}");
}

#[test]
fn integer_overflow_is_an_error_not_a_null() {
    let b = batch(vec![
        ("ts", Arc::new(Int64Array::from(vec![1]))),
        ("verb", Arc::new(StringArray::from(vec!["get"]))),
        ("response_code", Arc::new(Int64Array::from(vec![i64::MAX]))),
    ]);
    let e = error(SignalKind::Audit, &b);
    assert!(e.contains("column `response_code`"), "{e}");
}
