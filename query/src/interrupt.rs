//! Ending a running query from outside, whatever operator it is in.
//!
//! A query's result stream is polled by whoever reads it, but an operator that loops over its
//! input (an aggregate over a cross join, a sort) pulls batch after batch inside one poll
//! while its input never waits: a deadline timer or a client's departure only acts when the
//! stream is polled again, which may be never. So the check goes where the batches are made.
//! [`interruptible`] puts an [`InterruptibleExec`] above every node that makes batches out of
//! little input (scans and other leaves, joins, unnest, gap filling); each asks its
//! [`Interrupt`] before every batch and ends the query with [`Interrupted`] once it is set or
//! its deadline has passed. Operators above see an error from their input and stop, so the
//! query ends within one batch of any generator.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, Result, internal_err};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::Stream;

/// Why a query was ended from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[repr(u8)]
pub enum Interrupted {
    /// Its deadline passed.
    #[error("the query passed its deadline")]
    Deadline = 1,
    /// Whoever ran it stopped waiting (a client that went away).
    #[error("the query was cancelled: its client went away")]
    Cancelled = 2,
    /// The process is stopping.
    #[error("the server is stopping")]
    Stopping = 3,
    /// The process neared its memory ceiling and this query held the most memory.
    #[error("the server neared its memory ceiling and this query held the most memory")]
    MemoryCeiling = 4,
}

impl Interrupted {
    fn from_code(code: u8) -> Option<Interrupted> {
        match code {
            1 => Some(Interrupted::Deadline),
            2 => Some(Interrupted::Cancelled),
            3 => Some(Interrupted::Stopping),
            4 => Some(Interrupted::MemoryCeiling),
            _ => None,
        }
    }

    /// The reason, if `e` (or what caused it) is an interruption.
    pub fn of(e: &DataFusionError) -> Option<Interrupted> {
        match e.find_root() {
            DataFusionError::External(inner) => inner.downcast_ref::<Interrupted>().copied(),
            _ => None,
        }
    }
}

/// The switch that ends one query (or, as a parent, all queries of a process). Clones share
/// it; the first reason given stays.
#[derive(Debug, Clone, Default)]
pub struct Interrupt {
    own: Arc<AtomicU8>,
    parent: Option<Arc<AtomicU8>>,
    deadline: Option<Instant>,
}

impl Interrupt {
    /// A switch of its own, without a deadline.
    pub fn new() -> Interrupt {
        Interrupt::default()
    }

    /// A switch of its own that also trips when this one does (a query's, under the
    /// server's).
    pub fn child(&self) -> Interrupt {
        Interrupt {
            own: Arc::default(),
            parent: Some(Arc::clone(&self.own)),
            deadline: self.deadline,
        }
    }

    /// The same switch, also tripping at `deadline`.
    pub fn with_deadline(mut self, deadline: Instant) -> Interrupt {
        self.deadline = Some(deadline);
        self
    }

    /// Ends the query (or every child's) for `why`, unless it was already ended.
    pub fn interrupt(&self, why: Interrupted) {
        let _ = self
            .own
            .compare_exchange(0, why as u8, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Why the query must end, if it must.
    pub fn reason(&self) -> Option<Interrupted> {
        let own = self.own.load(Ordering::Acquire);
        let code = match (&self.parent, own) {
            (Some(parent), 0) => parent.load(Ordering::Acquire),
            _ => own,
        };
        Interrupted::from_code(code).or_else(|| {
            self.deadline
                .is_some_and(|d| Instant::now() >= d)
                .then_some(Interrupted::Deadline)
        })
    }

    /// `Err` once the query must end.
    pub fn check(&self) -> Result<()> {
        match self.reason() {
            None => Ok(()),
            Some(why) => Err(DataFusionError::External(Box::new(why))),
        }
    }
}

/// `plan` with an [`InterruptibleExec`] above each node that makes batches from little input.
pub fn interruptible(
    plan: Arc<dyn ExecutionPlan>,
    interrupt: &Interrupt,
) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        if !makes_batches(node.as_ref()) {
            return Ok(Transformed::no(node));
        }
        Ok(Transformed::yes(Arc::new(InterruptibleExec {
            input: node,
            interrupt: interrupt.clone(),
        }) as Arc<dyn ExecutionPlan>))
    })
    .map(|t| t.data)
}

/// Leaves, joins, unnest and gap filling: the nodes whose output can outgrow their input
/// (every other node's batches come from one of these).
fn makes_batches(node: &dyn ExecutionPlan) -> bool {
    let name = node.name();
    node.children().is_empty()
        || name.contains("Join")
        || name == "UnnestExec"
        || name == "GapFillExec"
}

/// Passes its input through, ending the query when its [`Interrupt`] says so.
#[derive(Debug)]
pub struct InterruptibleExec {
    input: Arc<dyn ExecutionPlan>,
    interrupt: Interrupt,
}

impl DisplayAs for InterruptibleExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("InterruptibleExec")
    }
}

impl ExecutionPlan for InterruptibleExec {
    fn name(&self) -> &str {
        "InterruptibleExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
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
        match (children.pop(), children.is_empty()) {
            (Some(input), true) => Ok(Arc::new(InterruptibleExec {
                input,
                interrupt: self.interrupt.clone(),
            })),
            _ => internal_err!("InterruptibleExec has one child"),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        self.interrupt.check()?;
        Ok(Box::pin(InterruptibleStream {
            input: self.input.execute(partition, context)?,
            interrupt: self.interrupt.clone(),
            ended: false,
        }))
    }
}

struct InterruptibleStream {
    input: SendableRecordBatchStream,
    interrupt: Interrupt,
    ended: bool,
}

impl Stream for InterruptibleStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        if let Err(e) = self.interrupt.check() {
            self.ended = true;
            return Poll::Ready(Some(Err(e)));
        }
        // Tests make a query panic here (`FAILPOINTS=query::batch=1*panic`), as a bug would.
        #[cfg(debug_assertions)]
        fail::fail_point!("query::batch");
        self.input.as_mut().poll_next(cx)
    }
}

impl RecordBatchStream for InterruptibleStream {
    fn schema(&self) -> SchemaRef {
        self.input.schema()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_first_reason_stays_and_a_parent_reaches_its_children() {
        let server = Interrupt::new();
        let query = server.child();
        assert_eq!(query.reason(), None);
        server.interrupt(Interrupted::Stopping);
        assert_eq!(query.reason(), Some(Interrupted::Stopping));
        query.interrupt(Interrupted::Cancelled);
        assert_eq!(query.reason(), Some(Interrupted::Cancelled));
        query.interrupt(Interrupted::Deadline);
        assert_eq!(
            query.reason(),
            Some(Interrupted::Cancelled),
            "first reason stays"
        );
        assert_eq!(server.reason(), Some(Interrupted::Stopping));
    }

    #[test]
    fn a_deadline_trips_on_its_own() {
        let past = Instant::now()
            .checked_sub(Duration::from_millis(1))
            .expect("an instant in the past");
        let interrupt = Interrupt::new().with_deadline(past);
        let e = interrupt.check().expect_err("past its deadline");
        assert_eq!(Interrupted::of(&e), Some(Interrupted::Deadline));
        let later = Interrupt::new().with_deadline(Instant::now() + Duration::from_secs(60));
        assert!(later.check().is_ok());
    }
}
