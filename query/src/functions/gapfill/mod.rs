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
//! The pieces, as in the other operators' modules: the marker functions live here; [`rule`]
//! holds [`GapFillRule`], an analyzer rule that rewrites such an aggregate into `date_bin`
//! buckets under a [`GapFillNode`] ([`node`]); [`plan`] turns the node into a
//! [`GapFillExec`] ([`exec`]), which streams the aggregate's output, sorted by (series,
//! bucket), through the columnar filler of `fill`: each series' rows stay Arrow arrays, and
//! its buckets are built from indices into them, one forward pass per series whatever the
//! gaps' lengths.

pub mod exec;
mod fill;
pub mod node;
pub mod plan;
pub mod rule;

use arrow::datatypes::DataType;
use datafusion::common::{Result, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

pub use exec::GapFillExec;
pub use node::{Fill, GapFillNode, GapFillSpec};
pub use plan::GapFillExtensionPlanner;
pub use rule::GapFillRule;

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

#[cfg(test)]
mod tests;
