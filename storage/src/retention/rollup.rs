//! Downsampling: raw metric rows (or finer rollups) become one row per series and bucket
//! with min, max, sum and count.
//!
//! Input arrives in (pod, ts) order, as segments hold it, so the buckets of one pod are
//! complete when the next pod starts: memory holds one pod's buckets, and the output comes
//! out in (pod, ts) order, ready for a segment writer, without a sort.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, TimestampNanosecondArray,
};
use arrow::datatypes::{Float64Type, Int64Type, SchemaRef};
use arrow::row::{RowConverter, Rows, SortField};

use crate::SignalKind;
use crate::error::Result;
use crate::schema::{TS_TZ, kind_schema};
use vigil_model::series::SERIES_COLUMNS;

const NANOS_PER_SECOND: i64 = 1_000_000_000;

#[derive(Debug, Clone, Copy)]
struct Aggregate {
    min: f64,
    max: f64,
    sum: f64,
    count: i64,
}

impl Aggregate {
    /// As SQL's `min` and `max` order floats (NaN above every number), so a bucket with a
    /// NaN sample has the same `max` raw and rolled up.
    fn add(&mut self, other: Aggregate) {
        self.min = std::cmp::min_by(self.min, other.min, f64::total_cmp);
        self.max = std::cmp::max_by(self.max, other.max, f64::total_cmp);
        self.sum += other.sum;
        self.count += other.count;
    }
}

struct Group {
    bucket: i64,
    step_ns: i64,
    series: Vec<u8>,
    agg: Aggregate,
}

/// Builds rollup rows from the rows of one segment.
pub(crate) struct RollupBuilder {
    converter: RowConverter,
    schema: SchemaRef,
    /// The pod whose buckets are open (rows of one pod are contiguous).
    current_pod: Option<Option<String>>,
    groups: Vec<Group>,
    index: HashMap<Vec<u8>, usize, ahash::RandomState>,
    key: Vec<u8>,
    /// Finished rows, in (pod, ts) order, not yet taken.
    done: Vec<Group>,
}

impl RollupBuilder {
    pub fn new() -> Result<Self> {
        let schema = kind_schema(SignalKind::Rollup);
        let fields = SERIES_COLUMNS
            .iter()
            .map(|name| {
                Ok(SortField::new(
                    schema.field_with_name(name)?.data_type().clone(),
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RollupBuilder {
            converter: RowConverter::new(fields)?,
            schema,
            current_pod: None,
            groups: Vec::new(),
            index: HashMap::default(),
            key: Vec::new(),
            done: Vec::new(),
        })
    }

    /// The series keys of a batch (raw metrics or rollups), to pass to [`Self::add`].
    pub fn series(&self, batch: &RecordBatch) -> Result<Rows> {
        let columns = SERIES_COLUMNS
            .iter()
            .map(|name| {
                batch.column_by_name(name).cloned().ok_or_else(|| {
                    arrow::error::ArrowError::SchemaError(format!("rollup input lacks `{name}`"))
                })
            })
            .collect::<std::result::Result<Vec<ArrayRef>, _>>()?;
        Ok(self.converter.convert_columns(&columns)?)
    }

    /// Adds rows of `batch`, each into its bucket of its step: `(row, step_ns)` in row order.
    pub fn add(&mut self, batch: &RecordBatch, series: &Rows, rows: &[(usize, i64)]) {
        let pods = batch
            .column_by_name("pod")
            .and_then(|c| c.as_string_opt::<i32>());
        let Some(ts) = batch
            .column_by_name("ts")
            .and_then(|c| c.as_primitive_opt::<arrow::datatypes::TimestampNanosecondType>())
        else {
            return;
        };
        let f64s = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_primitive_opt::<Float64Type>())
        };
        // Raw metrics have `value`; rollups have the four aggregates.
        let value = f64s("value");
        let (mins, maxs, sums) = (f64s("min"), f64s("max"), f64s("sum"));
        let counts = batch
            .column_by_name("count")
            .and_then(|c| c.as_primitive_opt::<Int64Type>());
        for &(row, step_ns) in rows {
            let pod = pods.and_then(|p| p.is_valid(row).then(|| p.value(row)));
            if self.current_pod.as_ref().map(|p| p.as_deref()) != Some(pod) {
                self.close_pod();
                self.current_pod = Some(pod.map(str::to_string));
            }
            let agg = match value {
                Some(v) => {
                    let v = v.value(row);
                    Aggregate {
                        min: v,
                        max: v,
                        sum: v,
                        count: 1,
                    }
                }
                None => Aggregate {
                    min: mins.map_or(0.0, |a| a.value(row)),
                    max: maxs.map_or(0.0, |a| a.value(row)),
                    sum: sums.map_or(0.0, |a| a.value(row)),
                    count: counts.map_or(0, |a| a.value(row)),
                },
            };
            let bucket = ts.value(row).div_euclid(step_ns) * step_ns;
            let series = series.row(row);
            self.key.clear();
            self.key.extend_from_slice(&bucket.to_be_bytes());
            self.key.extend_from_slice(&step_ns.to_be_bytes());
            self.key.extend_from_slice(series.as_ref());
            match self.index.get(self.key.as_slice()) {
                Some(&i) => self.groups[i].agg.add(agg),
                None => {
                    self.index.insert(self.key.clone(), self.groups.len());
                    self.groups.push(Group {
                        bucket,
                        step_ns,
                        series: series.as_ref().to_vec(),
                        agg,
                    });
                }
            }
        }
    }

    fn close_pod(&mut self) {
        self.index.clear();
        let mut groups = std::mem::take(&mut self.groups);
        groups.sort_by_key(|g| (g.bucket, g.step_ns));
        self.done.extend(groups);
    }

    /// Rows finished so far (all of them with `finish`), as rollup batches.
    pub fn take(&mut self, finish: bool) -> Result<Option<RecordBatch>> {
        if finish {
            self.close_pod();
        }
        if self.done.is_empty() {
            return Ok(None);
        }
        let groups = std::mem::take(&mut self.done);
        let parser = self.converter.parser();
        let series = self
            .converter
            .convert_rows(groups.iter().map(|g| parser.parse(&g.series)))?;
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for field in self.schema.fields() {
            let name = field.name().as_str();
            let column: ArrayRef = match name {
                "ts" => Arc::new(
                    TimestampNanosecondArray::from_iter_values(groups.iter().map(|g| g.bucket))
                        .with_timezone(TS_TZ),
                ),
                "step_seconds" => Arc::new(Int64Array::from_iter_values(
                    groups.iter().map(|g| g.step_ns / NANOS_PER_SECOND),
                )),
                "min" => Arc::new(Float64Array::from_iter_values(
                    groups.iter().map(|g| g.agg.min),
                )),
                "max" => Arc::new(Float64Array::from_iter_values(
                    groups.iter().map(|g| g.agg.max),
                )),
                "sum" => Arc::new(Float64Array::from_iter_values(
                    groups.iter().map(|g| g.agg.sum),
                )),
                "count" => Arc::new(Int64Array::from_iter_values(
                    groups.iter().map(|g| g.agg.count),
                )),
                _ => {
                    let i = SERIES_COLUMNS
                        .iter()
                        .position(|c| *c == name)
                        .ok_or_else(|| {
                            arrow::error::ArrowError::SchemaError(format!(
                                "rollup column `{name}` has no source"
                            ))
                        })?;
                    Arc::clone(&series[i])
                }
            };
            columns.push(column);
        }
        Ok(Some(RecordBatch::try_new(
            Arc::clone(&self.schema),
            columns,
        )?))
    }

    /// Rows finished and not yet taken.
    pub fn pending(&self) -> usize {
        self.done.len()
    }
}

/// The step of each row of a rollup batch, in nanoseconds.
pub(crate) fn step_ns_of(batch: &RecordBatch, row: usize) -> i64 {
    batch
        .column_by_name("step_seconds")
        .and_then(|c| c.as_primitive_opt::<Int64Type>())
        .map(|s| s.value(row).saturating_mul(NANOS_PER_SECOND))
        .unwrap_or(0)
}
