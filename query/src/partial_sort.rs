//! The physical optimizer rule that sorts only what is not sorted yet.
//!
//! When a `SortExec`'s input is already ordered by a prefix of its sort key (rows sorted by
//! `pod` that must be sorted by `(pod, ts)`), a [`PartialSortExec`] sorts each run of equal
//! prefix on its own: memory holds one run instead of the whole input, and the first rows
//! come out before the input ends. DataFusion makes this swap only for unbounded inputs; vigil
//! needs it for bounded ones, where series-major metric scans, ordered by
//! `(pod, name, ts)`, meet operators that want `(pod, ts)`.

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::sorts::partial_sort::PartialSortExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};

/// Replaces full sorts of inputs already sorted by a prefix of the key by partial sorts.
#[derive(Debug, Default)]
pub struct PartialSortRule;

impl PhysicalOptimizerRule for PartialSortRule {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            Ok(match partial_sort(&node)? {
                Some(replacement) => Transformed::yes(replacement),
                None => Transformed::no(node),
            })
        })
        .data()
    }

    fn name(&self) -> &str {
        "partial_sort"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

fn partial_sort(node: &Arc<dyn ExecutionPlan>) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let Some(sort) = node.downcast_ref::<SortExec>() else {
        return Ok(None);
    };
    // A top-k sort keeps k rows whatever its input; a sort that merges partitions into one
    // would need a merge of sorted partitions first, which EnsureRequirements plans itself.
    let input = sort.input();
    if sort.fetch().is_some()
        || (!sort.preserve_partitioning() && input.output_partitioning().partition_count() > 1)
    {
        return Ok(None);
    }
    let expr = sort.expr();
    let properties = input.equivalence_properties();
    let mut prefix = 0;
    while prefix < expr.len() && properties.ordering_satisfy(expr[..=prefix].to_vec())? {
        prefix += 1;
    }
    // Fully sorted inputs are EnsureRequirements' business (it removes such sorts).
    if prefix == 0 || prefix == expr.len() {
        return Ok(None);
    }
    Ok(Some(Arc::new(
        PartialSortExec::new(expr.clone(), Arc::clone(input), prefix)
            .with_preserve_partitioning(sort.preserve_partitioning()),
    )))
}
