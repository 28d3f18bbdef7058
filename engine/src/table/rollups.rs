//! `metrics_1m`, `metrics_1h`, ...: metrics at a coarser resolution, answered from the right
//! source for every bucket.
//!
//! Retention turns raw samples into rollup rows (`metric_rollups`) and removes them in one
//! step, so every sample is counted exactly once, either raw or in a rollup. A view of step
//! S therefore combines both: raw samples bucketed to S, and rollups of every step that
//! divides S re-bucketed to S, merged per (series, bucket) (min of mins, sum of sums...).
//! A range that spans data already downsampled and data still raw is answered from both,
//! each part from where it is; the same query keeps its answer as retention runs.
//!
//! Filters on `ts` and on the series columns reach both sources' scans, where they prune.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::datatypes::IntervalMonthDayNano;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::{Result, ScalarValue};
use datafusion::datasource::{TableProvider, TableType, provider_as_source};
use datafusion::functions::datetime::expr_fn::date_bin;
use datafusion::functions_aggregate::expr_fn::{count, max, min, sum};
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, TableProviderFilterPushDown, col, lit};
use datafusion::physical_plan::ExecutionPlan;
use vigil_model::schema::{kind_schema, ts_type};
use vigil_model::series::SERIES_COLUMNS;
use vigil_storage::{SignalKind, Store};

use crate::table::{KindTable, Visibility, attributes_key, inexact, scan_filter};

/// The grouping column standing for `attributes` inside the view's plan.
const ATTRIBUTES_KEY: &str = "attributes_key";

/// The columns of every rollup view.
pub static ROLLUP_VIEW_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let rollups = kind_schema(SignalKind::Rollup);
    // `date_bin` may return NULL as far as the planner knows.
    let mut fields = vec![Field::new("ts", ts_type(), true)];
    for name in SERIES_COLUMNS {
        let f = rollups.field_with_name(name).expect("a rollup column");
        fields.push(f.clone());
    }
    for name in ["min", "max", "avg", "sum"] {
        fields.push(Field::new(name, DataType::Float64, true));
    }
    fields.push(Field::new("count", DataType::Int64, true));
    Arc::new(Schema::new(fields))
});

/// The view name of a step: `metrics_30s`, `metrics_1m`, `metrics_1h`, `metrics_1d`.
pub fn rollup_view_name(step: Duration) -> String {
    let s = step.as_secs();
    let unit = if s.is_multiple_of(86_400) {
        format!("{}d", s / 86_400)
    } else if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    };
    format!("metrics_{unit}")
}

/// One view: metrics at `step`.
#[derive(Debug)]
pub struct RollupView {
    step: Duration,
    store: Arc<Store>,
    visibility: Visibility,
}

impl RollupView {
    /// The view over `metrics` and `metric_rollups` as `visibility` shows them.
    pub fn new(step: Duration, store: Arc<Store>, visibility: Visibility) -> Self {
        RollupView {
            step,
            store,
            visibility,
        }
    }

    /// Both sources read one version of the store: a retention pass that replaces raw rows
    /// by their rollup between two reads would otherwise count them twice, or not at all.
    fn sources(&self) -> (Arc<dyn TableProvider>, Arc<dyn TableProvider>) {
        let version = self.store.version();
        let table = |kind| -> Arc<dyn TableProvider> {
            Arc::new(
                KindTable::new(kind, Arc::clone(&self.store))
                    .with_visibility(self.visibility.clone())
                    .pinned(version.clone()),
            )
        };
        (table(SignalKind::Metric), table(SignalKind::Rollup))
    }
}

fn step_ns(step: Duration) -> i64 {
    vigil_model::time::nanos(step)
}

/// `date_bin(step, ts, epoch)`, named `ts`.
fn bucket(step: Duration) -> Expr {
    let stride = lit(ScalarValue::IntervalMonthDayNano(Some(
        IntervalMonthDayNano::new(0, 0, step_ns(step)),
    )));
    let origin = lit(ScalarValue::TimestampNanosecond(
        Some(0),
        Some("UTC".into()),
    ));
    date_bin(stride, col("ts"), origin).alias("ts")
}

fn ts_lit(ns: i64) -> Expr {
    lit(ScalarValue::TimestampNanosecond(
        Some(ns),
        Some("UTC".into()),
    ))
}

#[async_trait]
impl TableProvider for RollupView {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&ROLLUP_VIEW_SCHEMA)
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(inexact(filters))
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // What the filters say about buckets, turned into what they say about source rows:
        // a bucket starts at floor(ts / step) * step.
        let wanted = scan_filter(filters, SERIES_COLUMNS);
        let step = step_ns(self.step);
        let mut source_filters: Vec<Expr> = Vec::new();
        if wanted.is_empty_set() {
            source_filters.push(lit(false));
        }
        if let Some(lo) = wanted.min_ts {
            source_filters.push(col("ts").gt_eq(ts_lit(lo.div_euclid(step) * step)));
        }
        if let Some(hi) = wanted.max_ts {
            let end = (hi.div_euclid(step) * step).saturating_add(step);
            source_filters.push(col("ts").lt(ts_lit(end)));
        }
        for (column, values) in &wanted.values {
            let list = values.iter().map(|v| lit(v.as_str())).collect();
            source_filters.push(col(column.as_str()).in_list(list, false));
        }
        let filtered =
            |builder: LogicalPlanBuilder, extra: Vec<Expr>| -> Result<LogicalPlanBuilder> {
                let all: Vec<Expr> = source_filters.iter().cloned().chain(extra).collect();
                match datafusion::logical_expr::utils::conjunction(all) {
                    Some(predicate) => builder.filter(predicate),
                    None => Ok(builder),
                }
            };
        // The series columns, with `attributes` grouped as its canonical text.
        let series = || {
            SERIES_COLUMNS.iter().map(|c| match *c {
                "attributes" => attributes_key::to_key()
                    .call(vec![col("attributes")])
                    .alias(ATTRIBUTES_KEY),
                other => col(other),
            })
        };
        let keys = || -> Vec<Expr> { std::iter::once(bucket(self.step)).chain(series()).collect() };
        let (metrics, rollups) = self.sources();
        let raw = filtered(
            LogicalPlanBuilder::scan("metrics", provider_as_source(metrics), None)?,
            Vec::new(),
        )?
        .aggregate(
            keys(),
            vec![
                min(col("value")).alias("min"),
                max(col("value")).alias("max"),
                sum(col("value")).alias("sum"),
                count(col("value")).alias("count"),
            ],
        )?
        .build()?;
        let step_seconds = i64::try_from(self.step.as_secs()).unwrap_or(i64::MAX);
        let finer = vec![
            col("step_seconds").lt_eq(lit(step_seconds)),
            (lit(step_seconds) % col("step_seconds")).eq(lit(0i64)),
        ];
        let rolled = filtered(
            LogicalPlanBuilder::scan("metric_rollups", provider_as_source(rollups), None)?,
            finer,
        )?
        .project(
            keys()
                .into_iter()
                .chain(["min", "max", "sum", "count"].map(col)),
        )?
        .build()?;
        let series_cols = || -> Vec<Expr> {
            std::iter::once(col("ts"))
                .chain(SERIES_COLUMNS.iter().map(|c| match *c {
                    "attributes" => col(ATTRIBUTES_KEY),
                    other => col(other),
                }))
                .collect()
        };
        let merged = LogicalPlanBuilder::from(raw).union(rolled)?.aggregate(
            series_cols(),
            vec![
                min(col("min")).alias("min"),
                max(col("max")).alias("max"),
                sum(col("sum")).alias("sum"),
                sum(col("count")).alias("count"),
            ],
        )?;
        let mut outputs: Vec<Expr> = series_cols()
            .into_iter()
            .map(|e| match &e {
                Expr::Column(c) if c.name == ATTRIBUTES_KEY => {
                    attributes_key::from_key().call(vec![e]).alias("attributes")
                }
                _ => e,
            })
            .collect();
        outputs.extend([
            col("min"),
            col("max"),
            (col("sum") / datafusion::logical_expr::cast(col("count"), DataType::Float64))
                .alias("avg"),
            col("sum"),
            col("count"),
        ]);
        let all = merged.project(outputs)?;
        let plan = match projection {
            Some(indices) => {
                let schema = self.schema();
                all.project(indices.iter().map(|&i| col(schema.field(i).name())))?
            }
            None => all,
        }
        .build()?;
        state.create_physical_plan(&plan).await
    }
}
