//! Dynamic join-key filters: a join that learns which keys one side holds before it reads
//! the other side hands that side's scan a `key IN (...)` filter, so a scan that can prune
//! by key (vigil's pod index, Parquet statistics) reads only rows that can join.
//!
//! The filter is DataFusion's [`DynamicFilterPhysicalExpr`]: created while planning, pushed
//! to the scan by the filter-pushdown optimizer, published once the keys are known and
//! marked complete in every case, so a scan never waits on it. The joins here execute the
//! filtered side only after publishing (see [`crate::partition_merge::merge_partitions`]).

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, UInt32Array};
use arrow::compute::{concat, take};
use arrow::datatypes::Schema;
use arrow::row::{RowConverter, SortField};
use datafusion::common::Result;
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{
    BinaryExpr, DynamicFilterPhysicalExpr, InListExpr, lit,
};

/// More distinct values than this in one key and the filter is not narrowed: a list that
/// long prunes little and costs the scan to test.
pub const MAX_KEY_VALUES: usize = 100_000;

/// A filter over `keys` (expressions over the side to be filtered) that passes every row
/// until [`publish_keys`] narrows it.
pub fn new_key_filter(keys: &[Arc<dyn PhysicalExpr>]) -> Arc<DynamicFilterPhysicalExpr> {
    Arc::new(DynamicFilterPhysicalExpr::new(keys.to_vec(), lit(true)))
}

/// Narrows `filter` to `key_i IN (distinct non-null values of values_i)` for every key and
/// marks it complete. `keys` are the filter's key expressions over `schema`; `values` are
/// the other side's key columns, in pieces (one array per batch). NULL keys never join, so
/// they are left out; with no rows at all the filter passes nothing. When the values do not
/// suit (a type that differs from the key's, too many distinct values) the filter is
/// completed unchanged.
pub fn publish_keys(
    filter: &DynamicFilterPhysicalExpr,
    keys: &[Arc<dyn PhysicalExpr>],
    values: &[Vec<ArrayRef>],
    schema: &Schema,
) -> Result<()> {
    let narrowed = narrowed(keys, values, schema);
    if let Ok(Some(expr)) = narrowed {
        filter.update(expr)?;
    }
    filter.mark_complete();
    Ok(())
}

/// Completes `filter` without narrowing it.
pub fn leave_open(filter: &DynamicFilterPhysicalExpr) {
    filter.mark_complete();
}

fn narrowed(
    keys: &[Arc<dyn PhysicalExpr>],
    values: &[Vec<ArrayRef>],
    schema: &Schema,
) -> Result<Option<Arc<dyn PhysicalExpr>>> {
    if keys.is_empty() || keys.len() != values.len() {
        return Ok(None);
    }
    let mut conjunction: Option<Arc<dyn PhysicalExpr>> = None;
    for (key, pieces) in keys.iter().zip(values) {
        let Some(distinct) = distinct_values(pieces)? else {
            return Ok(None);
        };
        if distinct.is_empty() {
            return Ok(Some(lit(false)));
        }
        let in_list: Arc<dyn PhysicalExpr> = Arc::new(InListExpr::try_new_from_array(
            Arc::clone(key),
            distinct,
            false,
            schema,
        )?);
        conjunction = Some(match conjunction {
            None => in_list,
            Some(prev) => Arc::new(BinaryExpr::new(prev, Operator::And, in_list)),
        });
    }
    Ok(conjunction)
}

/// The distinct non-null values of a column given in pieces; `None` past
/// [`MAX_KEY_VALUES`].
pub fn distinct_values(pieces: &[ArrayRef]) -> Result<Option<ArrayRef>> {
    let Some(first) = pieces.first() else {
        return Ok(Some(arrow::array::new_empty_array(
            &arrow::datatypes::DataType::Null,
        )));
    };
    let refs: Vec<&dyn Array> = pieces.iter().map(|a| a.as_ref()).collect();
    let all = concat(&refs)?;
    let converter = RowConverter::new(vec![SortField::new(first.data_type().clone())])?;
    let rows = converter.convert_columns(&[Arc::clone(&all)])?;
    let mut seen = HashSet::new();
    let mut keep = Vec::new();
    for i in 0..all.len() {
        if all.is_valid(i) && seen.insert(rows.row(i)) {
            if seen.len() > MAX_KEY_VALUES {
                return Ok(None);
            }
            keep.push(i as u32);
        }
    }
    Ok(Some(take(&all, &UInt32Array::from(keep), None)?))
}
