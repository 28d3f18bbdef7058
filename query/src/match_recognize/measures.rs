//! MATCH_RECOGNIZE measure primitives, computed running: one pass over a match's rows, each
//! primitive's state (the first or last row of its variable, a count, a sum, the row of the
//! minimum...) updated by one step per row.
//!
//! Under `ALL ROWS PER MATCH` the value after row k is the primitive over rows 0..=k
//! (SQL:2016 RUNNING semantics), so a match of n rows costs O(n) per primitive, not the
//! O(n^2) of recomputing each prefix; under `ONE ROW PER MATCH` only the value after the last
//! row is kept (FINAL semantics). Values are never copied out as scalars: primitives that
//! pick a row's value (`FIRST`, `LAST`, `MIN`, `MAX`) and the leading columns record the row,
//! and the output columns are gathered from the stored batches at flush with `interleave`;
//! counts, sums and averages are plain numbers.

use std::cmp::Ordering;
use std::collections::VecDeque;

use arrow::array::{
    Array, ArrayRef, AsArray, DynComparator, Float64Array, Int64Array, RecordBatch, StringArray,
    UInt32Array, make_comparator, new_null_array,
};
use arrow::buffer::NullBuffer;
use arrow::compute::{SortOptions, cast, interleave, take};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::common::{Result, ScalarValue, internal_datafusion_err, internal_err};

use crate::match_recognize::exec::{MatchPlan, PhysicalPrimitive};
use crate::match_recognize::node::PrimitiveKind;

/// A stored row: (partition-wide batch index, row in that batch).
pub type RowRef = (usize, usize);

/// An input batch with what the measures read from it.
#[derive(Debug)]
pub struct Stored {
    pub batch: RecordBatch,
    /// The PARTITION BY values of each row.
    pub partition: Vec<ArrayRef>,
    /// Each primitive's input values (`None` for `COUNT(*)`, `CLASSIFIER()`,
    /// `MATCH_NUMBER()`); `SUM` and `AVG` inputs already cast to their result type.
    pub primitives: Vec<Option<ArrayRef>>,
    /// Each primitive's logical nulls, computed once per batch (a NULL-typed or dictionary
    /// column has nulls its null buffer does not show).
    valid: Vec<Option<NullBuffer>>,
}

impl Stored {
    pub fn new(
        batch: RecordBatch,
        partition: Vec<ArrayRef>,
        primitives: Vec<Option<ArrayRef>>,
    ) -> Self {
        let valid = primitives
            .iter()
            .map(|a| a.as_ref().and_then(|a| a.logical_nulls()))
            .collect();
        Stored {
            batch,
            partition,
            primitives,
            valid,
        }
    }

    /// True when primitive `p` has a non-null value at `row`.
    fn is_valid(&self, p: usize, row: usize) -> bool {
        self.primitives[p].is_some() && self.valid[p].as_ref().is_none_or(|v| v.is_valid(row))
    }

    fn values(&self, p: usize) -> Result<&ArrayRef> {
        self.primitives[p]
            .as_ref()
            .ok_or_else(|| internal_datafusion_err!("measure primitive {p} reads no values"))
    }
}

/// The stored batches of the current partition, addressed by partition-wide index.
#[derive(Debug, Clone, Copy)]
pub struct Batches<'a> {
    pub stored: &'a VecDeque<Stored>,
    /// The partition-wide index of `stored[0]`.
    pub base: usize,
}

impl<'a> Batches<'a> {
    fn get(&self, batch: usize) -> Result<&'a Stored> {
        batch
            .checked_sub(self.base)
            .and_then(|i| self.stored.get(i))
            .ok_or_else(|| internal_datafusion_err!("MATCH_RECOGNIZE row of a released batch"))
    }

    fn local(&self, (batch, row): RowRef) -> Result<(usize, usize)> {
        match batch.checked_sub(self.base) {
            Some(i) if i < self.stored.len() => Ok((i, row)),
            _ => internal_err!("MATCH_RECOGNIZE row of a released batch"),
        }
    }
}

/// One row of a match: where it is stored and the variable it was classified as.
#[derive(Debug, Clone, Copy)]
pub struct MatchRow {
    pub batch: usize,
    pub row: usize,
    pub var: usize,
}

impl MatchRow {
    fn at(&self) -> RowRef {
        (self.batch, self.row)
    }
}

/// A primitive's output column being collected.
#[derive(Debug)]
enum Column {
    /// `FIRST`, `LAST`, `MIN`, `MAX`: the row whose value it is, if any.
    Picks(Vec<Option<RowRef>>),
    /// `COUNT`, `MATCH_NUMBER()`, `SUM` of integers.
    Int64(Vec<Option<i64>>),
    /// `AVG`, `SUM` of anything else.
    Float64(Vec<Option<f64>>),
    /// `CLASSIFIER()`: the variable.
    Vars(Vec<u32>),
}

/// Output rows collected since the last flush.
#[derive(Debug)]
pub struct Output {
    rows: usize,
    /// ALL ROWS: the input row of each output row; ONE ROW: each match's first row (its
    /// partition values).
    leading: Vec<RowRef>,
    columns: Vec<Column>,
}

/// What a flush turns the collected rows into.
#[derive(Debug)]
pub struct Built {
    pub rows: usize,
    pub leading: Vec<ArrayRef>,
    pub primitives: Vec<ArrayRef>,
}

impl Output {
    pub fn new(plan: &MatchPlan) -> Self {
        let columns = plan
            .primitives
            .iter()
            .map(|p| match p.kind {
                PrimitiveKind::First
                | PrimitiveKind::Last
                | PrimitiveKind::Min
                | PrimitiveKind::Max => Column::Picks(vec![]),
                PrimitiveKind::Count | PrimitiveKind::MatchNumber => Column::Int64(vec![]),
                PrimitiveKind::Sum if p.data_type == DataType::Int64 => Column::Int64(vec![]),
                PrimitiveKind::Sum | PrimitiveKind::Avg => Column::Float64(vec![]),
                PrimitiveKind::Classifier => Column::Vars(vec![]),
            })
            .collect();
        Output {
            rows: 0,
            leading: vec![],
            columns,
        }
    }

    /// Adds a match's output rows: one per row under ALL ROWS PER MATCH, else one.
    pub fn push_match(
        &mut self,
        plan: &MatchPlan,
        rows: &[MatchRow],
        match_number: i64,
        batches: Batches<'_>,
    ) -> Result<()> {
        let Some(first) = rows.first() else {
            return Ok(());
        };
        let all = plan.all_rows;
        if all {
            self.leading.extend(rows.iter().map(MatchRow::at));
            self.rows += rows.len();
        } else {
            self.leading.push(first.at());
            self.rows += 1;
        }
        for (p, (prim, column)) in plan.primitives.iter().zip(&mut self.columns).enumerate() {
            let selected = |r: &MatchRow| prim.var.is_none_or(|want| want == r.var);
            match (prim.kind, column) {
                (PrimitiveKind::First, Column::Picks(out)) => {
                    let mut first = None;
                    running(rows, all, out, |r| {
                        if first.is_none() && selected(r) {
                            first = Some(r.at());
                        }
                        Ok(first)
                    })?
                }
                (PrimitiveKind::Last, Column::Picks(out)) => {
                    let mut last = None;
                    running(rows, all, out, |r| {
                        if selected(r) {
                            last = Some(r.at());
                        }
                        Ok(last)
                    })?
                }
                (PrimitiveKind::Min | PrimitiveKind::Max, Column::Picks(out)) => {
                    let mut best = Extreme::new(prim, p);
                    running(rows, all, out, |r| {
                        if selected(r) && batches.get(r.batch)?.is_valid(p, r.row) {
                            best.offer(r.at(), batches)?;
                        }
                        Ok(best.best)
                    })?
                }
                (PrimitiveKind::Count, Column::Int64(out)) => {
                    let mut count = 0i64;
                    running(rows, all, out, |r| {
                        if selected(r)
                            && (prim.expr.is_none() || batches.get(r.batch)?.is_valid(p, r.row))
                        {
                            count += 1;
                        }
                        Ok(Some(count))
                    })?
                }
                (PrimitiveKind::Sum, Column::Int64(out)) => {
                    let mut sum: Option<i64> = None;
                    running(rows, all, out, |r| {
                        if selected(r)
                            && let Some(v) = int64_at(batches.get(r.batch)?, p, r.row)?
                        {
                            // Wrapping, as `ScalarValue::add` sums integers.
                            sum = Some(sum.map_or(v, |s| s.wrapping_add(v)));
                        }
                        Ok(sum)
                    })?
                }
                (PrimitiveKind::Sum, Column::Float64(out)) => {
                    let mut sum: Option<f64> = None;
                    running(rows, all, out, |r| {
                        if selected(r)
                            && let Some(v) = float64_at(batches.get(r.batch)?, p, r.row)?
                        {
                            sum = Some(sum.map_or(v, |s| s + v));
                        }
                        Ok(sum)
                    })?
                }
                (PrimitiveKind::Avg, Column::Float64(out)) => {
                    let mut sum: Option<f64> = None;
                    let mut count = 0i64;
                    running(rows, all, out, |r| {
                        if selected(r)
                            && let Some(v) = float64_at(batches.get(r.batch)?, p, r.row)?
                        {
                            sum = Some(sum.map_or(v, |s| s + v));
                            count += 1;
                        }
                        Ok(sum.map(|s| s / count as f64))
                    })?
                }
                (PrimitiveKind::Classifier, Column::Vars(out)) => {
                    running(rows, all, out, |r| Ok(r.var as u32))?
                }
                (PrimitiveKind::MatchNumber, Column::Int64(out)) => {
                    running(rows, all, out, |_| Ok(Some(match_number)))?
                }
                (kind, _) => {
                    return internal_err!("measure {kind:?} collected in the wrong column");
                }
            }
        }
        Ok(())
    }

    /// The rows collected so far as arrays (the leading columns of `leading_types`, then one
    /// per primitive), leaving the output empty; `None` when there are none.
    pub fn build(
        &mut self,
        plan: &MatchPlan,
        batches: Batches<'_>,
        leading_types: &[DataType],
    ) -> Result<Option<Built>> {
        let fresh = Output::new(plan);
        let out = std::mem::replace(self, fresh);
        if out.rows == 0 {
            return Ok(None);
        }
        let leading = leading_types
            .iter()
            .enumerate()
            .map(|(c, target)| {
                let picks = out.leading.iter().map(|&at| Some(at));
                if plan.all_rows {
                    gather(batches, picks, target, |s| Some(s.batch.column(c)))
                } else {
                    gather(batches, picks, target, |s| s.partition.get(c))
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let primitives = plan
            .primitives
            .iter()
            .zip(out.columns)
            .enumerate()
            .map(|(p, (prim, column))| {
                let array: ArrayRef = match column {
                    Column::Picks(picks) => {
                        gather(batches, picks.into_iter(), &prim.data_type, |s| {
                            s.primitives[p].as_ref()
                        })?
                    }
                    Column::Int64(values) => std::sync::Arc::new(Int64Array::from(values)),
                    Column::Float64(values) => std::sync::Arc::new(Float64Array::from(values)),
                    Column::Vars(vars) => {
                        let names: StringArray =
                            plan.vars.iter().map(|v| Some(v.to_uppercase())).collect();
                        take(&names, &UInt32Array::from(vars), None)?
                    }
                };
                conform(array, &prim.data_type)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(Built {
            rows: out.rows,
            leading,
            primitives,
        }))
    }
}

/// Steps through a match's rows; keeps every running value under ALL ROWS PER MATCH, the
/// last one otherwise.
fn running<T>(
    rows: &[MatchRow],
    all_rows: bool,
    out: &mut Vec<T>,
    mut step: impl FnMut(&MatchRow) -> Result<T>,
) -> Result<()> {
    if all_rows {
        out.reserve(rows.len());
        for r in rows {
            out.push(step(r)?);
        }
        return Ok(());
    }
    let mut last = None;
    for r in rows {
        last = Some(step(r)?);
    }
    out.extend(last);
    Ok(())
}

fn int64_at(stored: &Stored, p: usize, row: usize) -> Result<Option<i64>> {
    if !stored.is_valid(p, row) {
        return Ok(None);
    }
    match stored.values(p)?.as_primitive_opt::<Int64Type>() {
        Some(values) => Ok(Some(values.value(row))),
        None => internal_err!("SUM input not cast to Int64"),
    }
}

fn float64_at(stored: &Stored, p: usize, row: usize) -> Result<Option<f64>> {
    if !stored.is_valid(p, row) {
        return Ok(None);
    }
    match stored.values(p)?.as_primitive_opt::<Float64Type>() {
        Some(values) => Ok(Some(values.value(row))),
        None => internal_err!("SUM or AVG input not cast to Float64"),
    }
}

/// The running `MIN` or `MAX`: the row holding the first of the extreme values.
struct Extreme {
    min: bool,
    p: usize,
    best: Option<RowRef>,
    /// Compares a candidate's batch with the best row's batch, for that pair of batches.
    comparator: Option<(usize, usize, DynComparator)>,
    /// Nested types (and any arrow cannot compare) are compared as `ScalarValue`s, as they
    /// were before this was columnar, so their order is exactly `ScalarValue`'s.
    scalar: Option<Option<ScalarValue>>,
}

impl Extreme {
    fn new(prim: &PhysicalPrimitive, p: usize) -> Self {
        Extreme {
            min: prim.kind == PrimitiveKind::Min,
            p,
            best: None,
            comparator: None,
            scalar: prim.data_type.is_nested().then_some(None),
        }
    }

    /// Offers a row with a non-null value; it becomes the best if strictly better, so ties
    /// keep the earliest row.
    fn offer(&mut self, at: RowRef, batches: Batches<'_>) -> Result<()> {
        let Some(best) = self.best else {
            self.best = Some(at);
            if self.scalar.is_some() {
                self.scalar = Some(Some(self.scalar_at(at, batches)?));
            }
            return Ok(());
        };
        let order = if self.scalar.is_none() {
            match self.compare(at, best, batches)? {
                Some(order) => Some(order),
                None => {
                    // Arrow cannot compare this type: go on with scalars from here.
                    self.scalar = Some(Some(self.scalar_at(best, batches)?));
                    return self.offer(at, batches);
                }
            }
        } else {
            let candidate = self.scalar_at(at, batches)?;
            let order = match &self.scalar {
                Some(Some(b)) => candidate.partial_cmp(b),
                _ => None,
            };
            if order == Some(self.wanted()) {
                self.scalar = Some(Some(candidate));
            }
            order
        };
        if order == Some(self.wanted()) {
            self.best = Some(at);
        }
        Ok(())
    }

    fn wanted(&self) -> Ordering {
        if self.min {
            Ordering::Less
        } else {
            Ordering::Greater
        }
    }

    /// Candidate against best with arrow's comparator (floats in total order, like
    /// `ScalarValue`); `None` when arrow has no comparator for the type.
    fn compare(
        &mut self,
        at: RowRef,
        best: RowRef,
        batches: Batches<'_>,
    ) -> Result<Option<Ordering>> {
        let fresh = !matches!(&self.comparator, Some((a, b, _)) if *a == at.0 && *b == best.0);
        if fresh {
            let candidate = batches.get(at.0)?.values(self.p)?;
            let current = batches.get(best.0)?.values(self.p)?;
            match make_comparator(candidate.as_ref(), current.as_ref(), SortOptions::default()) {
                Ok(c) => self.comparator = Some((at.0, best.0, c)),
                Err(_) => return Ok(None),
            }
        }
        Ok(self.comparator.as_ref().map(|(_, _, c)| c(at.1, best.1)))
    }

    fn scalar_at(&self, at: RowRef, batches: Batches<'_>) -> Result<ScalarValue> {
        ScalarValue::try_from_array(batches.get(at.0)?.values(self.p)?, at.1)
    }
}

/// The values at `picks` (NULL where `None`) of the array `array_of` each stored batch, as
/// a column of `target`.
fn gather<'a>(
    batches: Batches<'a>,
    picks: impl Iterator<Item = Option<RowRef>>,
    target: &DataType,
    array_of: impl Fn(&'a Stored) -> Option<&'a ArrayRef>,
) -> Result<ArrayRef> {
    let picks: Vec<Option<RowRef>> = picks.collect();
    let mut sources: Vec<&dyn Array> = Vec::with_capacity(batches.stored.len() + 1);
    for stored in batches.stored {
        match array_of(stored) {
            Some(a) => sources.push(a.as_ref()),
            None => return Ok(new_null_array(target, picks.len())),
        }
    }
    let Some(first) = sources.first() else {
        return Ok(new_null_array(target, picks.len()));
    };
    let null = new_null_array(first.data_type(), 1);
    let null_source = sources.len();
    sources.push(null.as_ref());
    let indices = picks
        .into_iter()
        .map(|pick| match pick {
            Some(at) => batches.local(at),
            None => Ok((null_source, 0)),
        })
        .collect::<Result<Vec<_>>>()?;
    conform(interleave(&sources, &indices)?, target)
}

/// `array` as `target`, cast when it is of another type.
fn conform(array: ArrayRef, target: &DataType) -> Result<ArrayRef> {
    if array.data_type() == target {
        return Ok(array);
    }
    if array.null_count() == array.len() {
        return Ok(new_null_array(target, array.len()));
    }
    Ok(cast(&array, target)?)
}
