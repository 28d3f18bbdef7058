//! The columnar gap filler: the rows of one series in, every bucket of the query's range
//! out, built from indices into the series' Arrow arrays.
//!
//! A series' rows (the aggregate's output, sorted by bucket) are kept as one `RecordBatch`
//! and, once, reduced to the times of its buckets (`Series::times`, ascending, distinct) and
//! the rows holding them. Output buckets are then walked forward with a cursor into those
//! times, and each output column is a list of (source, row) picks handed to arrow's
//! `interleave`: source 0 is a one-row NULL, source 1 the interpolated values of the chunk,
//! and the sources after that the series' own columns. `locf` keeps the row of the last
//! non-null value; `interpolate` keeps a cursor into the series' numeric values, so the
//! neighbours of every bucket of a gap are known without searching. Each series costs one
//! pass over its rows and one over its buckets, whatever the lengths of its gaps, and no
//! value is ever turned into a `ScalarValue`.

use std::collections::VecDeque;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, new_empty_array,
    new_null_array,
};
use arrow::buffer::NullBuffer;
use arrow::compute::{CastOptions, cast_with_options, concat_batches, interleave};
use arrow::datatypes::{DataType, Float64Type, SchemaRef, TimeUnit};
use arrow::row::{OwnedRow, RowConverter};
use datafusion::common::format::DEFAULT_CAST_OPTIONS;
use datafusion::common::{Result, internal_err};

use super::node::{Fill, GapFillSpec};
use crate::partition_merge::key_runs;
use crate::time;

/// The interleave source of a NULL value (a one-row null array).
const NULL_SOURCE: usize = 0;
/// The interleave source of the chunk's interpolated values of a column.
const INTERPOLATED_SOURCE: usize = 1;
/// The interleave source of the chunk's first series; the i-th series is `FIRST_SERIES + i`.
const FIRST_SERIES: usize = 2;
const NULL_PICK: (usize, usize) = (NULL_SOURCE, 0);

/// What an output column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The bucket: generated.
    Time,
    /// A series key: the same in every bucket of the series.
    Key,
    /// An aggregate: its value where the bucket had a row, else the fill.
    Value(Fill),
}

/// Turns the sorted output of an aggregate into every bucket of every series.
pub struct Filler {
    spec: Arc<GapFillSpec>,
    schema: SchemaRef,
    roles: Vec<Role>,
    converter: Option<Arc<RowConverter>>,
    batch_size: usize,
    /// The key of the open series; `None` before the first row and without series keys.
    key: Option<OwnedRow>,
    /// The open series' rows so far: one slice per input batch it spans.
    open: Vec<RecordBatch>,
    /// Complete series waiting to be emitted; the front one may be partly emitted.
    ready: VecDeque<Series>,
    /// One NULL of each column's type (interleave source 0).
    nulls: Vec<ArrayRef>,
}

impl Filler {
    pub fn new(
        spec: Arc<GapFillSpec>,
        schema: SchemaRef,
        converter: Option<Arc<RowConverter>>,
        batch_size: usize,
    ) -> Result<Self> {
        let columns = schema.fields().len();
        if spec.time >= columns || spec.series.iter().any(|&i| i >= columns) {
            return internal_err!("gap fill columns out of the input's {columns} columns");
        }
        let roles = (0..columns)
            .map(|c| {
                if c == spec.time {
                    Role::Time
                } else if spec.series.contains(&c) {
                    Role::Key
                } else {
                    Role::Value(spec.fills.get(c).copied().unwrap_or(Fill::Null))
                }
            })
            .collect();
        let nulls = schema
            .fields()
            .iter()
            .map(|f| new_null_array(f.data_type(), 1))
            .collect();
        Ok(Filler {
            spec,
            schema,
            roles,
            converter,
            batch_size: batch_size.max(1),
            key: None,
            open: vec![],
            ready: VecDeque::new(),
            nulls,
        })
    }

    /// Takes the next input batch; series it completes become ready to emit.
    pub fn push(&mut self, batch: &RecordBatch) -> Result<()> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        let key_arrays: Vec<ArrayRef> = self
            .spec
            .series
            .iter()
            .map(|&i| Arc::clone(batch.column(i)))
            .collect();
        let (ends, keys) = key_runs(&key_arrays, self.converter.as_deref(), rows)?;
        let mut start = 0;
        for (run, &end) in ends.iter().enumerate() {
            if let Some(keys) = &keys {
                let key = keys.row(run);
                if self.key.as_ref().is_none_or(|k| k.row() != key) {
                    self.close()?;
                    self.key = Some(key.owned());
                }
            }
            self.open.push(batch.slice(start, end - start));
            start = end;
        }
        Ok(())
    }

    /// Ends the input: the open series is complete.
    pub fn finish(&mut self) -> Result<()> {
        self.close()
    }

    /// Up to a batch of buckets of the ready series; `None` when none is ready.
    pub fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        if self.ready.is_empty() {
            return Ok(None);
        }
        let mut chunk = Chunk::new(self.roles.len(), self.batch_size);
        while chunk.times.len() < self.batch_size {
            let Some(series) = self.ready.front_mut() else {
                break;
            };
            let room = self.batch_size - chunk.times.len();
            series.emit(&self.spec, &self.roles, &mut chunk, room);
            if series.is_done(&self.spec) {
                self.ready.pop_front();
            }
        }
        chunk
            .build(&self.schema, &self.roles, &self.nulls)
            .map(Some)
    }

    /// Completes the open series.
    fn close(&mut self) -> Result<()> {
        self.key = None;
        let rows = match self.open.len() {
            0 => return Ok(()),
            1 => self.open.pop(),
            _ => Some(concat_batches(&self.schema, &self.open)?),
        };
        self.open.clear();
        let Some(rows) = rows else {
            return Ok(());
        };
        let series = Series::new(rows, &self.spec, &self.roles)?;
        // Without series keys, the whole input is one series, and it is emitted only when it
        // has a row in some bucket (an empty aggregate, or one of NULL buckets only, gives no
        // output at all), as before this operator was columnar.
        if !self.spec.series.is_empty() || !series.times.is_empty() {
            self.ready.push_back(series);
        }
        Ok(())
    }
}

/// One series: its rows and how far its buckets have been emitted.
struct Series {
    rows: RecordBatch,
    /// The buckets that have a row, ascending and distinct (normalised time).
    times: Vec<i64>,
    /// The row of `rows` for each of `times` (of several rows with one bucket, the last).
    at: Vec<usize>,
    /// The next bucket to emit, counted from `GapFillSpec::first`.
    next: i64,
    /// The first of `times` at or after the next bucket.
    cursor: usize,
    /// Per column, what its fill remembers between buckets.
    states: Vec<State>,
}

/// A value column's fill state.
enum State {
    /// Keys, the time, and NULL fills need none.
    Stateless,
    Locf {
        valid: Option<NullBuffer>,
        /// The row of the last non-null value seen in a bucket of the range.
        last: Option<usize>,
    },
    Interpolate {
        valid: Option<NullBuffer>,
        /// The buckets (any, also outside the range) with a numeric value, and the value.
        points: Vec<(i64, f64)>,
        /// The first point at or after the next bucket.
        cursor: usize,
        /// Interpolated values are rounded for integer columns.
        round: bool,
    },
}

fn is_valid(valid: &Option<NullBuffer>, row: usize) -> bool {
    valid.as_ref().is_none_or(|v| v.is_valid(row))
}

impl Series {
    fn new(rows: RecordBatch, spec: &GapFillSpec, roles: &[Role]) -> Result<Self> {
        let time = time::time_values(rows.column(spec.time))?;
        let mut order: Vec<usize> = (0..rows.num_rows()).filter(|&r| time.is_valid(r)).collect();
        // The input is sorted by bucket; a stable sort keeps rows of one bucket in input
        // order in case it is not, so the last of them wins either way.
        if order
            .windows(2)
            .any(|w| time.value(w[0]) > time.value(w[1]))
        {
            order.sort_by_key(|&r| time.value(r));
        }
        let mut times: Vec<i64> = Vec::with_capacity(order.len());
        let mut at: Vec<usize> = Vec::with_capacity(order.len());
        for r in order {
            let t = time.value(r);
            if times.last() == Some(&t) {
                if let Some(row) = at.last_mut() {
                    *row = r;
                }
            } else {
                times.push(t);
                at.push(r);
            }
        }
        let states = roles
            .iter()
            .enumerate()
            .map(|(c, role)| {
                let column = rows.column(c);
                match role {
                    Role::Value(Fill::Locf) => State::Locf {
                        valid: column.logical_nulls(),
                        last: None,
                    },
                    Role::Value(Fill::Interpolate) => State::Interpolate {
                        valid: column.logical_nulls(),
                        points: numeric_points(column, &times, &at),
                        cursor: 0,
                        round: column.data_type().is_integer(),
                    },
                    _ => State::Stateless,
                }
            })
            .collect();
        Ok(Series {
            rows,
            times,
            at,
            next: 0,
            cursor: 0,
            states,
        })
    }

    fn is_done(&self, spec: &GapFillSpec) -> bool {
        self.next >= spec.buckets()
    }

    /// Appends up to `room` of the next buckets to `chunk`.
    fn emit(&mut self, spec: &GapFillSpec, roles: &[Role], chunk: &mut Chunk, room: usize) {
        let count = (spec.buckets() - self.next).clamp(0, room as i64) as usize;
        if count == 0 {
            return;
        }
        let source = FIRST_SERIES + chunk.series.len();
        chunk.series.push(self.rows.clone());
        // The row of each bucket, if it has one: one forward pass over the series' buckets.
        let from = chunk.times.len();
        let mut present: Vec<Option<usize>> = Vec::with_capacity(count);
        for k in self.next..self.next + count as i64 {
            let t = spec.first + k * spec.stride;
            while self.cursor < self.times.len() && self.times[self.cursor] < t {
                self.cursor += 1;
            }
            present.push((self.times.get(self.cursor) == Some(&t)).then(|| self.at[self.cursor]));
            chunk.times.push(t);
        }
        let times = &chunk.times[from..];
        for (c, role) in roles.iter().enumerate() {
            let picks = &mut chunk.picks[c];
            match (role, &mut self.states[c]) {
                (Role::Time, _) => {}
                (Role::Key, _) => picks.extend(std::iter::repeat_n((source, 0), count)),
                (Role::Value(Fill::Locf), State::Locf { valid, last }) => {
                    for &row in &present {
                        match row {
                            Some(r) if is_valid(valid, r) => {
                                *last = Some(r);
                                picks.push((source, r));
                            }
                            _ => picks.push(last.map_or(NULL_PICK, |r| (source, r))),
                        }
                    }
                }
                (
                    Role::Value(Fill::Interpolate),
                    State::Interpolate {
                        valid,
                        points,
                        cursor,
                        round,
                    },
                ) => {
                    let values = &mut chunk.interpolated[c];
                    for (&row, &t) in present.iter().zip(times) {
                        if let Some(r) = row
                            && is_valid(valid, r)
                        {
                            picks.push((source, r));
                            continue;
                        }
                        while *cursor < points.len() && points[*cursor].0 < t {
                            *cursor += 1;
                        }
                        // The nearest numeric values strictly before and after the bucket.
                        let before = cursor.checked_sub(1).map(|i| points[i]);
                        let after = points[*cursor..].iter().find(|p| p.0 > t).copied();
                        match (before, after) {
                            (Some((t0, v0)), Some((t1, v1))) => {
                                let share = (t - t0) as f64 / (t1 - t0) as f64;
                                let v = v0 + (v1 - v0) * share;
                                picks.push((INTERPOLATED_SOURCE, values.len()));
                                values.push(if *round { v.round() } else { v });
                            }
                            _ => picks.push(NULL_PICK),
                        }
                    }
                }
                // A NULL fill (or a state that does not match its role, which `new` never
                // builds): the bucket's own value, NULL where it has none.
                (Role::Value(_), _) => picks.extend(
                    present
                        .iter()
                        .map(|row| row.map_or(NULL_PICK, |r| (source, r))),
                ),
            }
        }
        self.next += count as i64;
    }
}

/// The buckets among `times` whose value (row `at`) reads as a number, with that number. A
/// column no number can be read from (text that does not parse, a type with no cast to
/// `Float64`) has no points, so nothing is interpolated in it.
fn numeric_points(column: &ArrayRef, times: &[i64], at: &[usize]) -> Vec<(i64, f64)> {
    let options = CastOptions {
        safe: true,
        ..CastOptions::default()
    };
    let Ok(numbers) = cast_with_options(column, &DataType::Float64, &options) else {
        return vec![];
    };
    let numbers = numbers.as_primitive::<Float64Type>();
    times
        .iter()
        .zip(at)
        .filter(|&(_, &r)| numbers.is_valid(r))
        .map(|(&t, &r)| (t, numbers.value(r)))
        .collect()
}

/// One output batch being assembled: bucket times and, per column, interleave picks.
struct Chunk {
    times: Vec<i64>,
    /// The series with buckets in this chunk, in order (interleave sources from
    /// [`FIRST_SERIES`]).
    series: Vec<RecordBatch>,
    picks: Vec<Vec<(usize, usize)>>,
    /// Per column, its interpolated values in this chunk (source [`INTERPOLATED_SOURCE`]).
    interpolated: Vec<Vec<f64>>,
}

impl Chunk {
    fn new(columns: usize, capacity: usize) -> Self {
        Chunk {
            times: Vec::with_capacity(capacity),
            series: vec![],
            picks: vec![vec![]; columns],
            interpolated: vec![vec![]; columns],
        }
    }

    fn build(
        mut self,
        schema: &SchemaRef,
        roles: &[Role],
        nulls: &[ArrayRef],
    ) -> Result<RecordBatch> {
        let mut columns = Vec::with_capacity(roles.len());
        for (c, role) in roles.iter().enumerate() {
            let data_type = schema.field(c).data_type();
            if *role == Role::Time {
                columns.push(bucket_array(&self.times, data_type)?);
                continue;
            }
            let interpolated = if self.interpolated[c].is_empty() {
                new_empty_array(data_type)
            } else {
                // Cast as a `ScalarValue` cast would (errors are errors, not NULLs), so a
                // value that does not fit the column fails the query as it did before.
                let values = Float64Array::from(std::mem::take(&mut self.interpolated[c]));
                cast_with_options(&values, data_type, &DEFAULT_CAST_OPTIONS)?
            };
            let mut sources: Vec<&dyn Array> = vec![nulls[c].as_ref(), interpolated.as_ref()];
            sources.extend(self.series.iter().map(|s| s.column(c).as_ref()));
            columns.push(interleave(&sources, &self.picks[c])?);
        }
        Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
    }
}

/// Bucket times (normalised nanoseconds) as a column of `data_type`, a timestamp of any unit
/// and time zone: the instants are kept as they are, only relabelled with the zone.
fn bucket_array(times: &[i64], data_type: &DataType) -> Result<ArrayRef> {
    let per_unit = match data_type {
        DataType::Timestamp(TimeUnit::Second, _) => 1_000_000_000,
        DataType::Timestamp(TimeUnit::Millisecond, _) => 1_000_000,
        DataType::Timestamp(TimeUnit::Microsecond, _) => 1_000,
        DataType::Timestamp(TimeUnit::Nanosecond, _) => 1,
        other => return internal_err!("gap fill buckets must be timestamps, got {other}"),
    };
    let raw = Int64Array::from_iter_values(times.iter().map(|t| t / per_unit));
    // Int64 to a timestamp type reinterprets the values; no time zone adjustment applies.
    Ok(cast_with_options(&raw, data_type, &DEFAULT_CAST_OPTIONS)?)
}
