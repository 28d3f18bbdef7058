//! Gap filling: `time_bucket_gapfill(interval, ts)` as a GROUP BY key gives one row per
//! bucket of the query's time range for every series, even where no data fell;
//! `locf(agg)` carries the last value forward into empty buckets and `interpolate(agg)`
//! fills them linearly between their neighbours.
//!
//! ```sql
//! SELECT time_bucket_gapfill(INTERVAL '1 minute', ts) AS minute, pod, locf(avg(value))
//! FROM metrics WHERE name = 'cpu' AND ts >= TIMESTAMP '...' AND ts < TIMESTAMP '...'
//! GROUP BY 1, 2
//! ```
//!
//! [`GapFillRule`] (an analyzer rule) rewrites such an aggregate into `date_bin` buckets under
//! a [`GapFillNode`]; [`GapFillExec`] then emits each series' buckets in order.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::row::{OwnedRow, RowConverter};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{
    DFSchemaRef, DataFusionError, Result, ScalarValue, internal_err, plan_err,
};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{
    Aggregate, BinaryExpr, ColumnarValue, Expr, ExprSchemable, Extension, LogicalPlan, Operator,
    Projection, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, UserDefinedLogicalNode,
    UserDefinedLogicalNodeCore, Volatility,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::physical_expr::expressions::Column as PhysicalColumn;
use datafusion::physical_expr::{
    EquivalenceProperties, LexOrdering, OrderingRequirements, PhysicalSortExpr,
};
use datafusion::physical_plan::execution_plan::EmissionType;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, InputDistributionRequirements,
    Partitioning, PlanProperties,
};
use datafusion::physical_planner::{ExtensionPlanner, PhysicalPlanner};
use futures::StreamExt;

use crate::merge::{boundedness, key_converter};
use crate::time;

pub const GAPFILL: &str = "time_bucket_gapfill";
pub const LOCF: &str = "locf";
pub const INTERPOLATE: &str = "interpolate";

/// The three marker functions; evaluated anywhere but where the rule rewrites them, they fail
/// with a message saying how to use them.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Marker {
    name: &'static str,
    signature: Signature,
}

pub fn marker_udfs() -> Vec<ScalarUDF> {
    [GAPFILL, LOCF, INTERPOLATE]
        .into_iter()
        .map(|name| {
            ScalarUDF::from(Marker {
                name,
                signature: Signature::variadic_any(Volatility::Immutable),
            })
        })
        .collect()
}

impl ScalarUDFImpl for Marker {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let at = if self.name == GAPFILL { 1 } else { 0 };
        match arg_types.get(at) {
            Some(t) => Ok(t.clone()),
            None => plan_err!("{} takes {} argument(s)", self.name, at + 1),
        }
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        plan_err!(
            "{}() only works in a query that groups by time_bucket_gapfill(interval, ts) and bounds ts in WHERE (ts >= start AND ts < end); locf() and interpolate() wrap its aggregates",
            self.name
        )
    }
}

/// How an empty bucket's value is made up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd)]
pub enum Fill {
    Null,
    Locf,
    Interpolate,
}

/// Where the buckets are and how to fill them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub struct GapFillSpec {
    /// Output column of the aggregate holding the bucket.
    pub time: usize,
    /// The other group columns: one series per combination.
    pub series: Vec<usize>,
    pub stride: i64,
    pub origin: i64,
    /// First and last bucket (inclusive), normalised time.
    pub first: i64,
    pub last: i64,
    /// Fill per output column (aggregates only; keys are never missing).
    pub fills: Vec<Fill>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub struct GapFillNode {
    pub input: Arc<LogicalPlan>,
    pub spec: GapFillSpec,
}

impl UserDefinedLogicalNodeCore for GapFillNode {
    fn name(&self) -> &str {
        "GapFill"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        self.input.schema()
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "GapFill: time=#{}, series={:?}, stride={}, buckets={}..={}, fills={:?}",
            self.spec.time,
            self.spec.series,
            self.spec.stride,
            self.spec.first,
            self.spec.last,
            self.spec.fills
        )
    }

    fn with_exprs_and_inputs(
        &self,
        _exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> Result<Self> {
        let Some(input) = inputs.pop() else {
            return internal_err!("GapFill needs one input");
        };
        Ok(GapFillNode {
            input: Arc::new(input),
            spec: self.spec.clone(),
        })
    }
}

/// Rewrites `GROUP BY time_bucket_gapfill(..)` aggregates (see the module docs).
#[derive(Debug, Default)]
pub struct GapFillRule;

impl AnalyzerRule for GapFillRule {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up(|node| match &node {
            LogicalPlan::Projection(p) if matches!(p.input.as_ref(), LogicalPlan::Aggregate(a) if gapfill_key(a).is_some()) => {
                rewrite(p).map(Transformed::yes)
            }
            _ => Ok(Transformed::no(node)),
        })
        .data()
    }

    fn name(&self) -> &str {
        "vigil_gapfill"
    }
}

fn is_call(e: &Expr, name: &str) -> Option<Vec<Expr>> {
    match e {
        Expr::ScalarFunction(ScalarFunction { func, args }) if func.name() == name => {
            Some(args.clone())
        }
        _ => None,
    }
}

fn gapfill_key(agg: &Aggregate) -> Option<usize> {
    agg.group_expr
        .iter()
        .position(|e| is_call(unalias(e), GAPFILL).is_some())
}

fn unalias(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(a) => unalias(&a.expr),
        other => other,
    }
}

fn constant(e: &Expr) -> Option<ScalarValue> {
    match e {
        Expr::Literal(v, _) => Some(v.clone()),
        Expr::Cast(c) => constant(&c.expr)?.cast_to(c.field.data_type()).ok(),
        Expr::TryCast(c) => constant(&c.expr)?.cast_to(c.field.data_type()).ok(),
        _ => None,
    }
}

/// A constant timestamp on the normalised scale of `time_type`.
fn instant(value: &ScalarValue, time_type: &DataType) -> Result<i64> {
    let array = value.cast_to(time_type)?.to_array()?;
    let v = time::time_values(&array)?;
    if v.is_null(0) {
        return plan_err!("time_bucket_gapfill: the time range bound is NULL");
    }
    Ok(v.value(0))
}

fn time_range(
    plan: &LogicalPlan,
    ts: &Expr,
    time_type: &DataType,
) -> Result<(Option<i64>, Option<i64>)> {
    let mut lo: Option<i64> = None;
    let mut hi: Option<i64> = None;
    let mut visit = |pred: &Expr| -> Result<()> {
        for c in split_conjunction(pred) {
            let Expr::BinaryExpr(BinaryExpr { left, op, right }) = c else {
                continue;
            };
            let (op, value) = if unalias(left) == unalias(ts) {
                (*op, constant(right))
            } else if unalias(right) == unalias(ts) {
                (op.swap().unwrap_or(*op), constant(left))
            } else {
                continue;
            };
            let Some(value) = value else { continue };
            let t = instant(&value, time_type)?;
            match op {
                Operator::GtEq => lo = Some(lo.map_or(t, |l| l.max(t))),
                Operator::Gt => lo = Some(lo.map_or(t + 1, |l| l.max(t + 1))),
                Operator::Lt => hi = Some(hi.map_or(t, |h| h.min(t))),
                Operator::LtEq => hi = Some(hi.map_or(t + 1, |h| h.min(t + 1))),
                _ => {}
            }
        }
        Ok(())
    };
    plan.apply(|p| {
        match p {
            LogicalPlan::Filter(f) => visit(&f.predicate)?,
            LogicalPlan::TableScan(s) => {
                for f in &s.filters {
                    visit(f)?;
                }
            }
            _ => {}
        }
        Ok(match p {
            LogicalPlan::Filter(_)
            | LogicalPlan::TableScan(_)
            | LogicalPlan::SubqueryAlias(_)
            | LogicalPlan::Projection(_) => TreeNodeRecursion::Continue,
            _ => TreeNodeRecursion::Jump,
        })
    })?;
    Ok((lo, hi))
}

fn rewrite(projection: &Projection) -> Result<LogicalPlan> {
    let LogicalPlan::Aggregate(agg) = projection.input.as_ref() else {
        return internal_err!("gap fill expects an aggregate");
    };
    let Some(g) = gapfill_key(agg) else {
        return internal_err!("gap fill expects a time_bucket_gapfill key");
    };
    let original = agg.group_expr[g].clone();
    let Some(args) = is_call(unalias(&original), GAPFILL) else {
        return internal_err!("gap fill key lost");
    };
    if args.len() < 2 || args.len() > 3 {
        return plan_err!("time_bucket_gapfill takes (interval, ts [, origin])");
    }
    let input_schema = agg.input.schema();
    let time_type = args[1].get_type(input_schema)?;
    if !matches!(time_type, DataType::Timestamp(_, _)) {
        return plan_err!("time_bucket_gapfill needs a timestamp, got {time_type}");
    }
    let Some(stride_value) = constant(&args[0]) else {
        return plan_err!("time_bucket_gapfill: the interval must be a constant");
    };
    let stride = time::duration_value(&stride_value, &time_type, "time_bucket_gapfill interval")?;
    if stride == 0 {
        return plan_err!("time_bucket_gapfill: the interval must be positive");
    }
    let origin = match args.get(2) {
        Some(e) => match constant(e) {
            Some(v) => instant(&v, &time_type)?,
            None => {
                return plan_err!("time_bucket_gapfill: the origin must be a constant timestamp");
            }
        },
        None => 0,
    };
    let (Some(lo), Some(hi)) = time_range(&agg.input, &args[1], &time_type)? else {
        return plan_err!(
            "time_bucket_gapfill needs the time range in WHERE, e.g. {} >= TIMESTAMP '...' AND {} < TIMESTAMP '...'",
            args[1],
            args[1]
        );
    };
    if hi <= lo {
        return plan_err!("time_bucket_gapfill: the time range is empty");
    }
    let bucket = |t: i64| origin + (t - origin).div_euclid(stride) * stride;
    let (first, last) = (bucket(lo), bucket(hi - 1));
    if (last - first) / stride > 10_000_000 {
        return plan_err!("time_bucket_gapfill: more than 10 million buckets per series");
    }

    // The aggregate groups by date_bin under the same output name.
    let name = original.schema_name().to_string();
    let mut date_bin_args = vec![args[0].clone(), args[1].clone()];
    if let Some(o) = args.get(2) {
        date_bin_args.push(o.clone());
    }
    let bin = datafusion::functions::datetime::date_bin()
        .call(date_bin_args)
        .alias(name);
    let mut group_expr = agg.group_expr.clone();
    group_expr[g] = bin;
    let new_agg = LogicalPlan::Aggregate(Aggregate::try_new(
        Arc::clone(&agg.input),
        group_expr,
        agg.aggr_expr.clone(),
    )?);
    let agg_schema = new_agg.schema().clone();
    let mut fills = vec![Fill::Null; agg_schema.fields().len()];
    let mut exprs = vec![];
    for e in &projection.expr {
        let (inner, alias) = match e {
            Expr::Alias(a) => (a.expr.as_ref(), Some(a.name.clone())),
            other => (other, None),
        };
        let fill = if let Some(a) = is_call(inner, LOCF) {
            Some((Fill::Locf, a))
        } else {
            is_call(inner, INTERPOLATE).map(|a| (Fill::Interpolate, a))
        };
        match fill {
            Some((fill, a)) => {
                let [Expr::Column(c)] = a.as_slice() else {
                    return plan_err!(
                        "locf() and interpolate() take one aggregate, e.g. locf(avg(value))"
                    );
                };
                let Some(i) = agg_schema.maybe_index_of_column(c) else {
                    return plan_err!(
                        "locf() and interpolate() take one aggregate of the query, got {c}"
                    );
                };
                if i < agg.group_expr.len() {
                    return plan_err!(
                        "locf() and interpolate() take an aggregate, not a GROUP BY key"
                    );
                }
                fills[i] = fill;
                let name = alias.unwrap_or_else(|| inner.schema_name().to_string());
                exprs.push(Expr::Column(c.clone()).alias(name));
            }
            None => exprs.push(e.clone()),
        }
    }
    let spec = GapFillSpec {
        time: g,
        series: (0..agg.group_expr.len()).filter(|&i| i != g).collect(),
        stride,
        origin,
        first,
        last,
        fills,
    };
    let fill = LogicalPlan::Extension(Extension {
        node: Arc::new(GapFillNode {
            input: Arc::new(new_agg),
            spec,
        }),
    });
    Ok(LogicalPlan::Projection(Projection::try_new(
        exprs,
        Arc::new(fill),
    )?))
}

/// Plans [`GapFillNode`]s.
#[derive(Debug, Default)]
pub struct GapFillExtensionPlanner;

#[async_trait]
impl ExtensionPlanner for GapFillExtensionPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn Session,
        _ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(node) = node.as_any().downcast_ref::<GapFillNode>() else {
            return Ok(None);
        };
        let [input] = physical_inputs else {
            return Err(DataFusionError::Internal("GapFill needs one input".into()));
        };
        Ok(Some(Arc::new(GapFillExec::new(
            Arc::clone(input),
            node.spec.clone(),
        ))))
    }
}

/// Emits every bucket of every series, in (series, time) order.
#[derive(Debug)]
pub struct GapFillExec {
    input: Arc<dyn ExecutionPlan>,
    spec: GapFillSpec,
    properties: Arc<PlanProperties>,
}

impl GapFillExec {
    pub fn new(input: Arc<dyn ExecutionPlan>, spec: GapFillSpec) -> Self {
        let schema = input.schema();
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            boundedness(&[&input]),
        );
        GapFillExec {
            input,
            spec,
            properties: Arc::new(properties),
        }
    }

    fn ordering(&self) -> Option<LexOrdering> {
        let schema = self.input.schema();
        let options = arrow::compute::SortOptions {
            descending: false,
            nulls_first: false,
        };
        LexOrdering::new(self.spec.series.iter().chain([&self.spec.time]).map(|&i| {
            PhysicalSortExpr::new(
                Arc::new(PhysicalColumn::new(schema.field(i).name(), i)),
                options,
            )
        }))
    }
}

impl DisplayAs for GapFillExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "GapFillExec: stride={}, buckets={}, fills={:?}",
            self.spec.stride,
            (self.spec.last - self.spec.first) / self.spec.stride + 1,
            self.spec.fills
        )
    }
}

impl ExecutionPlan for GapFillExec {
    fn name(&self) -> &str {
        "GapFillExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        InputDistributionRequirements::new(vec![Distribution::SinglePartition])
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        vec![self.ordering().map(OrderingRequirements::from)]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(
            &Arc<dyn datafusion::physical_expr::PhysicalExpr>,
        ) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(input) = children.pop() else {
            return internal_err!("GapFillExec needs one child");
        };
        Ok(Arc::new(GapFillExec::new(input, self.spec.clone())))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return internal_err!("GapFillExec has one partition");
        }
        let schema = self.input.schema();
        let input = self.input.execute(0, context)?;
        let key_types: Vec<DataType> = self
            .spec
            .series
            .iter()
            .map(|&i| schema.field(i).data_type().clone())
            .collect();
        let filler = Filler {
            spec: self.spec.clone(),
            schema: Arc::clone(&schema),
            converter: key_converter(&key_types)?,
            key: None,
            rows: BTreeMap::new(),
            series_values: vec![],
        };
        let out_schema = Arc::clone(&schema);
        let stream = futures::stream::try_unfold(
            (input, filler, false),
            |(mut input, mut filler, done)| async move {
                if done {
                    return Ok(None);
                }
                loop {
                    match input.next().await.transpose()? {
                        Some(batch) => {
                            let out = filler.push(&batch)?;
                            if let Some(out) = out {
                                return Ok(Some((out, (input, filler, false))));
                            }
                        }
                        None => {
                            let out = filler.finish_series()?;
                            return Ok(out.map(|b| (b, (input, filler, true))));
                        }
                    }
                }
            },
        );
        Ok(Box::pin(RecordBatchStreamAdapter::new(out_schema, stream)))
    }
}

struct Filler {
    spec: GapFillSpec,
    schema: SchemaRef,
    converter: Option<Arc<RowConverter>>,
    key: Option<OwnedRow>,
    /// The current series' rows by bucket: every column's value.
    rows: BTreeMap<i64, Vec<ScalarValue>>,
    series_values: Vec<ScalarValue>,
}

impl Filler {
    /// Takes a batch; returns the rows of series it completed.
    fn push(&mut self, batch: &RecordBatch) -> Result<Option<RecordBatch>> {
        let keys = match &self.converter {
            Some(c) => {
                let arrays: Vec<ArrayRef> = self
                    .spec
                    .series
                    .iter()
                    .map(|&i| Arc::clone(batch.column(i)))
                    .collect();
                Some(c.convert_columns(&arrays)?)
            }
            None => None,
        };
        let times = time::time_values(batch.column(self.spec.time))?;
        let mut out = vec![];
        for r in 0..batch.num_rows() {
            if let Some(keys) = &keys {
                let key = keys.row(r);
                if self.key.as_ref().is_some_and(|k| k.row() != key)
                    && let Some(b) = self.finish_series()?
                {
                    out.push(b);
                }
                if self.key.is_none() {
                    self.key = Some(key.owned());
                }
            }
            if self.series_values.is_empty() {
                self.series_values = self
                    .spec
                    .series
                    .iter()
                    .map(|&i| ScalarValue::try_from_array(batch.column(i), r))
                    .collect::<Result<_>>()?;
            }
            if times.is_null(r) {
                continue;
            }
            let values = batch
                .columns()
                .iter()
                .map(|c| ScalarValue::try_from_array(c, r))
                .collect::<Result<Vec<_>>>()?;
            self.rows.insert(times.value(r), values);
        }
        if out.is_empty() {
            return Ok(None);
        }
        Ok(Some(arrow::compute::concat_batches(&self.schema, &out)?))
    }

    /// Emits the current series' buckets, filled.
    fn finish_series(&mut self) -> Result<Option<RecordBatch>> {
        let rows = std::mem::take(&mut self.rows);
        let series_values = std::mem::take(&mut self.series_values);
        self.key = None;
        if series_values.is_empty() && rows.is_empty() {
            return Ok(None);
        }
        let s = &self.spec;
        let n_cols = self.schema.fields().len();
        let mut columns: Vec<Vec<ScalarValue>> = vec![vec![]; n_cols];
        let time_field = self.schema.field(s.time);
        let mut last_seen: Vec<Option<ScalarValue>> = vec![None; n_cols];
        let mut t = s.first;
        while t <= s.last {
            let present = rows.get(&t);
            for (c, column) in columns.iter_mut().enumerate() {
                let value = if c == s.time {
                    ScalarValue::TimestampNanosecond(Some(t), None)
                        .cast_to(time_field.data_type())?
                } else if let Some(k) = s.series.iter().position(|&i| i == c) {
                    series_values[k].clone()
                } else {
                    match present.map(|row| row[c].clone()).filter(|v| !v.is_null()) {
                        Some(v) => {
                            last_seen[c] = Some(v.clone());
                            v
                        }
                        None => {
                            let null = ScalarValue::try_from(self.schema.field(c).data_type())?;
                            match s.fills[c] {
                                Fill::Null => null,
                                Fill::Locf => last_seen[c].clone().unwrap_or(null),
                                Fill::Interpolate => interpolate(&rows, c, t)?.unwrap_or(null),
                            }
                        }
                    }
                };
                column.push(value);
            }
            t += s.stride;
        }
        if columns[0].is_empty() {
            return Ok(None);
        }
        let arrays = columns
            .into_iter()
            .enumerate()
            .map(|(c, values)| {
                let array = ScalarValue::iter_to_array(values)?;
                let want = self.schema.field(c).data_type();
                Ok(if array.data_type() == want {
                    array
                } else {
                    arrow::compute::cast(&array, want)?
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(RecordBatch::try_new(
            Arc::clone(&self.schema),
            arrays,
        )?))
    }
}

/// The value of column `c` at time `t`, linear between the nearest present values around it.
fn interpolate(
    rows: &BTreeMap<i64, Vec<ScalarValue>>,
    c: usize,
    t: i64,
) -> Result<Option<ScalarValue>> {
    let number = |v: &ScalarValue| match v.cast_to(&DataType::Float64) {
        Ok(ScalarValue::Float64(Some(x))) => Some(x),
        _ => None,
    };
    let before = rows
        .range(..t)
        .rev()
        .find_map(|(k, row)| number(&row[c]).map(|x| (*k, x)));
    let after = rows
        .range(t + 1..)
        .find_map(|(k, row)| number(&row[c]).map(|x| (*k, x)));
    let (Some((t0, v0)), Some((t1, v1))) = (before, after) else {
        return Ok(None);
    };
    let share = (t - t0) as f64 / (t1 - t0) as f64;
    let v = v0 + (v1 - v0) * share;
    let data_type = rows
        .values()
        .next()
        .map(|r| r[c].data_type())
        .unwrap_or(DataType::Float64);
    let value = ScalarValue::Float64(Some(v));
    Ok(Some(if data_type.is_integer() {
        ScalarValue::Float64(Some(v.round())).cast_to(&data_type)?
    } else {
        value.cast_to(&data_type)?
    }))
}
