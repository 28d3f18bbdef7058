//! The `MatchRecognize` logical plan node.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::{DFSchema, DFSchemaRef, Result, ScalarValue, internal_err};
use datafusion::logical_expr::{
    Expr, ExprSchemable, LogicalPlan, SortExpr, UserDefinedLogicalNodeCore,
};

use crate::match_recognize::pattern::{Pattern, Skip};

/// What a measure reads from the rows of a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd)]
pub enum PrimitiveKind {
    First,
    Last,
    Count,
    Sum,
    Avg,
    Min,
    Max,
    Classifier,
    MatchNumber,
}

/// One navigation or aggregate over a match, e.g. `FIRST(hot.ts)` or `COUNT(hot.*)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub struct Primitive {
    pub kind: PrimitiveKind,
    /// Only rows classified as this variable; `None` is every row of the match.
    pub var: Option<usize>,
    /// The value read from each row (over the input schema); `None` for `COUNT(*)`,
    /// `CLASSIFIER()` and `MATCH_NUMBER()`.
    pub expr: Option<Expr>,
}

/// `PREV(expr, n)` (negative offset) or `NEXT(expr, n)` in a DEFINE.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub struct Nav {
    pub expr: Expr,
    pub offset: i64,
}

/// Everything MATCH_RECOGNIZE says besides its input.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchSpec {
    pub partition_by: Vec<Expr>,
    pub order_by: Vec<SortExpr>,
    pub vars: Vec<String>,
    /// Per variable; `None` matches any row.
    pub defines: Vec<Option<Expr>>,
    pub navs: Vec<Nav>,
    pub pattern: Pattern,
    pub within: Option<ScalarValue>,
    pub primitives: Vec<Primitive>,
    /// Output name and expression over [`MatchRecognizeNode::measure_schema`].
    pub measures: Vec<(String, Expr)>,
    pub all_rows: bool,
    pub skip: Skip,
}

/// `input MATCH_RECOGNIZE (...)`.
#[derive(Debug, Clone)]
pub struct MatchRecognizeNode {
    pub input: Arc<LogicalPlan>,
    pub spec: MatchSpec,
    pub schema: DFSchemaRef,
}

/// Name of the i-th PREV/NEXT column DEFINE expressions read.
pub fn nav_column(i: usize) -> String {
    format!("__vigil_nav_{i}")
}

/// Name of the i-th primitive column measures read.
pub fn primitive_column(i: usize) -> String {
    format!("__vigil_measure_{i}")
}

/// Name of the i-th partition column measures read.
pub fn partition_column(i: usize) -> String {
    format!("__vigil_partition_{i}")
}

impl PrimitiveKind {
    pub fn data_type(self, input: Option<&DataType>) -> DataType {
        match self {
            PrimitiveKind::Count | PrimitiveKind::MatchNumber => DataType::Int64,
            PrimitiveKind::Classifier => DataType::Utf8,
            PrimitiveKind::Avg => DataType::Float64,
            PrimitiveKind::Sum => match input {
                Some(t) if t.is_integer() => DataType::Int64,
                _ => DataType::Float64,
            },
            PrimitiveKind::First
            | PrimitiveKind::Last
            | PrimitiveKind::Min
            | PrimitiveKind::Max => input.cloned().unwrap_or(DataType::Null),
        }
    }
}

impl MatchRecognizeNode {
    pub fn try_new(input: Arc<LogicalPlan>, spec: MatchSpec) -> Result<Self> {
        let measure_schema = Self::measure_schema_of(&input, &spec)?;
        let mut fields: Vec<(Option<datafusion::common::TableReference>, Arc<Field>)> = vec![];
        if spec.all_rows {
            for f in input.schema().fields() {
                fields.push((None, Arc::clone(f)));
            }
        } else {
            for (i, e) in spec.partition_by.iter().enumerate() {
                let (_, field) = e.to_field(input.schema())?;
                let name = match e {
                    Expr::Column(c) => c.name.clone(),
                    _ => partition_column(i),
                };
                fields.push((None, Arc::new(field.as_ref().clone().with_name(name))));
            }
        }
        for (name, e) in &spec.measures {
            let (_, field) = e.to_field(&measure_schema)?;
            fields.push((
                None,
                Arc::new(field.as_ref().clone().with_name(name).with_nullable(true)),
            ));
        }
        let schema = DFSchema::new_with_metadata(fields, Default::default())?;
        Ok(MatchRecognizeNode {
            input,
            spec,
            schema: Arc::new(schema),
        })
    }

    /// Input columns plus one column per PREV/NEXT: what DEFINE expressions see.
    pub fn define_schema(&self) -> Result<DFSchema> {
        let input = self.input.schema();
        let mut fields: Vec<_> = input
            .iter()
            .map(|(q, f)| (q.cloned(), Arc::clone(f)))
            .collect();
        for (i, nav) in self.spec.navs.iter().enumerate() {
            let (_, f) = nav.expr.to_field(input)?;
            fields.push((
                None,
                Arc::new(
                    f.as_ref()
                        .clone()
                        .with_name(nav_column(i))
                        .with_nullable(true),
                ),
            ));
        }
        DFSchema::new_with_metadata(fields, Default::default())
    }

    /// Partition columns plus one column per primitive: what MEASURES see.
    pub fn measure_schema(&self) -> Result<DFSchema> {
        Self::measure_schema_of(&self.input, &self.spec)
    }

    fn measure_schema_of(input: &LogicalPlan, spec: &MatchSpec) -> Result<DFSchema> {
        let schema = input.schema();
        let mut fields = vec![];
        for (i, e) in spec.partition_by.iter().enumerate() {
            let (q, f) = e.to_field(schema)?;
            match e {
                Expr::Column(_) => fields.push((q, f)),
                _ => fields.push((
                    None,
                    Arc::new(f.as_ref().clone().with_name(partition_column(i))),
                )),
            }
        }
        for (i, p) in spec.primitives.iter().enumerate() {
            let input_type = p.expr.as_ref().map(|e| e.get_type(schema)).transpose()?;
            let t = p.kind.data_type(input_type.as_ref());
            fields.push((None, Arc::new(Field::new(primitive_column(i), t, true))));
        }
        DFSchema::new_with_metadata(fields, Default::default())
    }

    fn input_exprs(&self) -> Vec<Expr> {
        let s = &self.spec;
        s.partition_by
            .iter()
            .cloned()
            .chain(s.order_by.iter().map(|o| o.expr.clone()))
            .chain(s.navs.iter().map(|n| n.expr.clone()))
            .chain(s.primitives.iter().filter_map(|p| p.expr.clone()))
            .collect()
    }
}

impl PartialEq for MatchRecognizeNode {
    fn eq(&self, other: &Self) -> bool {
        self.input == other.input && self.spec == other.spec
    }
}

impl Eq for MatchRecognizeNode {}

impl Hash for MatchRecognizeNode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.input.hash(state);
        self.input_exprs().hash(state);
        self.spec.vars.hash(state);
    }
}

impl PartialOrd for MatchRecognizeNode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        format!("{self:?}").partial_cmp(&format!("{other:?}"))
    }
}

impl UserDefinedLogicalNodeCore for MatchRecognizeNode {
    fn name(&self) -> &str {
        "MatchRecognize"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        self.input_exprs()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let s = &self.spec;
        let partition: Vec<String> = s.partition_by.iter().map(|e| e.to_string()).collect();
        let order: Vec<String> = s.order_by.iter().map(|e| e.to_string()).collect();
        write!(
            f,
            "MatchRecognize: partition_by=[{}], order_by=[{}], pattern={:?}, vars=[{}], {}, skip={:?}",
            partition.join(", "),
            order.join(", "),
            s.pattern,
            s.vars.join(", "),
            if s.all_rows {
                "all rows per match"
            } else {
                "one row per match"
            },
            s.skip
        )?;
        if let Some(w) = &s.within {
            write!(f, ", within={w}")?;
        }
        Ok(())
    }

    fn with_exprs_and_inputs(&self, exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> Result<Self> {
        let Ok([input]): std::result::Result<[LogicalPlan; 1], _> = inputs.try_into() else {
            return internal_err!("MatchRecognize needs one input");
        };
        let mut spec = self.spec.clone();
        let expected = self.input_exprs().len();
        if exprs.len() != expected {
            return internal_err!(
                "MatchRecognize expected {expected} expressions, got {}",
                exprs.len()
            );
        }
        let mut it = exprs.into_iter();
        for e in spec.partition_by.iter_mut() {
            *e = it.next().unwrap_or_else(|| e.clone());
        }
        for o in spec.order_by.iter_mut() {
            o.expr = it.next().unwrap_or_else(|| o.expr.clone());
        }
        for n in spec.navs.iter_mut() {
            n.expr = it.next().unwrap_or_else(|| n.expr.clone());
        }
        for p in spec.primitives.iter_mut() {
            if let Some(e) = p.expr.as_mut() {
                *e = it.next().unwrap_or_else(|| e.clone());
            }
        }
        MatchRecognizeNode::try_new(Arc::new(input), spec)
    }

    fn necessary_children_exprs(&self, output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        let input = self.input.schema();
        let mut needed: HashSet<usize> = HashSet::new();
        let mut add = |e: &Expr| {
            for c in e.column_refs() {
                if let Some(i) = input.maybe_index_of_column(c) {
                    needed.insert(i);
                }
            }
        };
        for e in self.input_exprs() {
            add(&e);
        }
        for e in self.spec.defines.iter().flatten() {
            add(e);
        }
        if self.spec.all_rows {
            let n = input.fields().len();
            needed.extend(output_columns.iter().copied().filter(|&i| i < n));
        }
        let mut needed: Vec<usize> = needed.into_iter().collect();
        needed.sort_unstable();
        Some(vec![needed])
    }

    fn prevent_predicate_push_down_columns(&self) -> HashSet<String> {
        // A filter changes which rows form a match: keep them all above.
        self.schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }
}
