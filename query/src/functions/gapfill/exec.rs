//! `GapFillExec`: every bucket of every series of the aggregate below it, in (series, bucket)
//! order, streamed series by series through the columnar filler.
//!
//! The input is the aggregate's output, required in one partition sorted by (series keys,
//! bucket). A series' rows are held (as slices of the input batches) only until the first row
//! of the next series arrives; its buckets are then produced in output batches of the
//! session's batch size, so a series of millions of buckets never sits in memory as one
//! batch.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result, internal_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::expressions::Column as PhysicalColumn;
use datafusion::physical_expr::{
    EquivalenceProperties, LexOrdering, OrderingRequirements, PhysicalExpr, PhysicalSortExpr,
};
use datafusion::physical_plan::execution_plan::EmissionType;
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, InputDistributionRequirements,
    Partitioning, PlanProperties,
};
use futures::StreamExt;

use super::fill::Filler;
use super::node::GapFillSpec;
use crate::sorted_join::{boundedness, key_converter};

/// Emits every bucket of every series, in (series, time) order.
#[derive(Debug)]
pub struct GapFillExec {
    input: Arc<dyn ExecutionPlan>,
    spec: Arc<GapFillSpec>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
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
            spec: Arc::new(spec),
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    pub fn spec(&self) -> &GapFillSpec {
        &self.spec
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
            self.spec.buckets(),
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
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
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
        Ok(Arc::new(GapFillExec::new(
            input,
            self.spec.as_ref().clone(),
        )))
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
        let batch_size = context.session_config().batch_size();
        let input = self.input.execute(0, context)?;
        let key_types: Vec<DataType> = self
            .spec
            .series
            .iter()
            .map(|&i| schema.field(i).data_type().clone())
            .collect();
        let filler = Filler::new(
            Arc::clone(&self.spec),
            Arc::clone(&schema),
            key_converter(&key_types)?,
            batch_size,
        )?;
        let metrics = BaselineMetrics::new(&self.metrics, partition);
        let stream = futures::stream::try_unfold(
            (input, filler, metrics, false),
            |(mut input, mut filler, metrics, mut ended)| async move {
                loop {
                    // Buckets of the series completed so far go out first, one batch at a
                    // time, before more input is read.
                    if let Some(batch) = filler.next_batch()? {
                        metrics.record_output(batch.num_rows());
                        return Ok(Some((batch, (input, filler, metrics, ended))));
                    }
                    if ended {
                        return Ok(None);
                    }
                    match input.next().await.transpose()? {
                        Some(batch) => filler.push(&batch)?,
                        None => {
                            filler.finish()?;
                            ended = true;
                        }
                    }
                }
            },
        );
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}
