//! Time functions: `time_bucket`, gap filling (`time_bucket_gapfill`, `locf`,
//! `interpolate`) and counter `rate`/`increase`; and bounds on the output of DataFusion's
//! functions that can grow without limit (`bounded`).

pub mod bounded;
pub mod counter;
pub mod gapfill;

use std::sync::Arc;

use datafusion::logical_expr::{AggregateUDF, ScalarUDF};

/// `time_bucket(interval, ts [, origin])`: the start of the interval-wide bucket holding `ts`
/// (buckets are aligned to `origin`, by default 1970-01-01T00:00:00Z). The same function as
/// DataFusion's `date_bin`, under the name TimescaleDB and QuestDB users know.
pub fn time_bucket() -> ScalarUDF {
    datafusion::functions::datetime::date_bin()
        .as_ref()
        .clone()
        .with_aliases(["time_bucket"])
}

/// The scalar functions vigil adds.
pub fn scalar_functions() -> Vec<Arc<ScalarUDF>> {
    let mut out = vec![Arc::new(time_bucket())];
    out.extend(gapfill::marker_udfs().into_iter().map(Arc::new));
    out
}

/// The aggregate functions vigil adds.
pub fn aggregate_functions() -> Vec<Arc<AggregateUDF>> {
    vec![Arc::new(counter::rate()), Arc::new(counter::increase())]
}
