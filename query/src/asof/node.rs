//! The `AsofJoin` logical plan node.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::common::{DFSchemaRef, Result, ScalarValue, internal_err};
use datafusion::logical_expr::{
    Expr, JoinType, LogicalPlan, UserDefinedLogicalNodeCore, build_join_schema,
};

/// How the right row's time relates to the left row's, as written `left.ts OP right.ts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd)]
pub enum AsofOp {
    /// `left.ts >= right.ts`: the latest right row at or before the left row.
    Ge,
    /// `left.ts > right.ts`: the latest right row strictly before.
    Gt,
    /// `left.ts <= right.ts`: the earliest right row at or after.
    Le,
    /// `left.ts < right.ts`: the earliest right row strictly after.
    Lt,
}

impl AsofOp {
    /// The same relation seen from the other side (`a >= b` is `b <= a`).
    pub fn flip(self) -> AsofOp {
        match self {
            AsofOp::Ge => AsofOp::Le,
            AsofOp::Gt => AsofOp::Lt,
            AsofOp::Le => AsofOp::Ge,
            AsofOp::Lt => AsofOp::Gt,
        }
    }

    /// True when the match is a right row at or before the left row.
    pub fn looks_back(self) -> bool {
        matches!(self, AsofOp::Ge | AsofOp::Gt)
    }

    /// True when equal times do not match.
    pub fn strict(self) -> bool {
        matches!(self, AsofOp::Gt | AsofOp::Lt)
    }

    pub fn symbol(self) -> &'static str {
        match self {
            AsofOp::Ge => ">=",
            AsofOp::Gt => ">",
            AsofOp::Le => "<=",
            AsofOp::Lt => "<",
        }
    }
}

/// Options of an ASOF join beyond its keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub struct AsofOptions {
    pub op: AsofOp,
    /// Take the closest right row on either side (ties go to the earlier row); `op` then
    /// only says which columns are the times.
    pub nearest: bool,
    /// Maximum distance between the two times; farther rows do not match.
    pub tolerance: Option<ScalarValue>,
    /// `Inner` drops left rows without a match; `Left` keeps them with NULLs.
    pub join_type: JoinType,
}

/// `left ASOF JOIN right`: each left row with the closest right row of equal keys whose time
/// satisfies the inequality.
#[derive(Debug, Clone)]
pub struct AsofJoinNode {
    pub left: Arc<LogicalPlan>,
    pub right: Arc<LogicalPlan>,
    /// Equality keys, (left expression, right expression).
    pub on: Vec<(Expr, Expr)>,
    pub left_time: Expr,
    pub right_time: Expr,
    pub options: AsofOptions,
    pub schema: DFSchemaRef,
}

impl AsofJoinNode {
    pub fn try_new(
        left: Arc<LogicalPlan>,
        right: Arc<LogicalPlan>,
        on: Vec<(Expr, Expr)>,
        left_time: Expr,
        right_time: Expr,
        options: AsofOptions,
    ) -> Result<Self> {
        let schema = build_join_schema(left.schema(), right.schema(), &options.join_type)?;
        Ok(AsofJoinNode {
            left,
            right,
            on,
            left_time,
            right_time,
            options,
            schema: Arc::new(schema),
        })
    }
}

impl PartialEq for AsofJoinNode {
    fn eq(&self, other: &Self) -> bool {
        self.left == other.left
            && self.right == other.right
            && self.on == other.on
            && self.left_time == other.left_time
            && self.right_time == other.right_time
            && self.options == other.options
    }
}

impl Eq for AsofJoinNode {}

impl Hash for AsofJoinNode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.left.hash(state);
        self.right.hash(state);
        self.on.hash(state);
        self.left_time.hash(state);
        self.right_time.hash(state);
        self.options.hash(state);
    }
}

impl PartialOrd for AsofJoinNode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        // Plans are compared only for equality in practice; order by the printed form.
        format!("{self:?}").partial_cmp(&format!("{other:?}"))
    }
}

impl UserDefinedLogicalNodeCore for AsofJoinNode {
    fn name(&self) -> &str {
        "AsofJoin"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.left, &self.right]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        let mut exprs: Vec<Expr> = self
            .on
            .iter()
            .flat_map(|(l, r)| [l.clone(), r.clone()])
            .collect();
        exprs.push(self.left_time.clone());
        exprs.push(self.right_time.clone());
        exprs
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let keys: Vec<String> = self.on.iter().map(|(l, r)| format!("{l} = {r}")).collect();
        write!(
            f,
            "AsofJoin: type={}, on=[{}], match={} {} {}",
            self.options.join_type,
            keys.join(", "),
            self.left_time,
            self.options.op.symbol(),
            self.right_time
        )?;
        if self.options.nearest {
            write!(f, ", nearest")?;
        }
        if let Some(t) = &self.options.tolerance {
            write!(f, ", tolerance={t}")?;
        }
        Ok(())
    }

    fn with_exprs_and_inputs(&self, exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> Result<Self> {
        let [left, right]: [LogicalPlan; 2] = match inputs.try_into() {
            Ok(inputs) => inputs,
            Err(_) => return internal_err!("AsofJoin needs two inputs"),
        };
        let keys = self.on.len();
        if exprs.len() != keys * 2 + 2 {
            return internal_err!("AsofJoin expected {} expressions", keys * 2 + 2);
        }
        let mut it = exprs.into_iter();
        let mut on = Vec::with_capacity(keys);
        for _ in 0..keys {
            if let (Some(l), Some(r)) = (it.next(), it.next()) {
                on.push((l, r));
            }
        }
        let (Some(left_time), Some(right_time)) = (it.next(), it.next()) else {
            return internal_err!("AsofJoin lost its time expressions");
        };
        AsofJoinNode::try_new(
            Arc::new(left),
            Arc::new(right),
            on,
            left_time,
            right_time,
            self.options.clone(),
        )
    }

    fn necessary_children_exprs(&self, output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        // Output is the left columns then the right columns; the optimizer adds the columns
        // the join's own expressions use.
        let left_len = self.left.schema().fields().len();
        let (left, right): (Vec<usize>, Vec<usize>) =
            output_columns.iter().partition(|&&i| i < left_len);
        Some(vec![
            left,
            right.into_iter().map(|i| i - left_len).collect(),
        ])
    }

    fn prevent_predicate_push_down_columns(&self) -> std::collections::HashSet<String> {
        // DataFusion would push a filter into *both* inputs; a filter on the right side also
        // changes which row is closest. Keep every filter above the join.
        self.schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }
}
