//! The `GapFill` logical node and the description of its work ([`GapFillSpec`]), which the
//! rule computes once at planning and the executor follows.

use std::fmt;
use std::sync::Arc;

use datafusion::common::{DFSchemaRef, Result, internal_err};
use datafusion::logical_expr::{Expr, LogicalPlan, UserDefinedLogicalNodeCore};

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

impl GapFillSpec {
    /// Buckets per series: every stride from `first` to `last`.
    pub fn buckets(&self) -> i64 {
        (self.last - self.first) / self.stride + 1
    }
}

/// The aggregate below, with every bucket of every series filled in.
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
