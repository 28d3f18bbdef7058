//! vigil's tables as DataFusion sees them: one per kind, the union `signals`, `pods`, the
//! rollup views (`metrics_1m`...) and the retention tables.

mod access;
mod attributes_key;
mod exec;
mod insert;
mod join_pods;
mod kind;
mod pods;
mod retention;
mod rollups;
mod scan;
mod segment_reader;
mod signals;
mod visibility;

use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use vigil_query::{ColumnRoles, analyze};
use vigil_storage::ScanFilter;

pub use exec::{ScanSummary, VigilScanExec};
pub use kind::KindTable;
pub use pods::{PODS_SCHEMA, PodsTable};
pub use retention::{HOLDS_SCHEMA, HoldsTable, RULES_SCHEMA, rules_table};
pub use rollups::{ROLLUP_VIEW_SCHEMA, RollupView, rollup_view_name};
pub use scan::row_ordering;
pub use signals::SignalsTable;
pub use visibility::Visibility;

pub(crate) fn scan_filter(filters: &[Expr], strings: &[&str]) -> ScanFilter {
    let c = analyze(
        filters,
        &ColumnRoles {
            time: "ts",
            strings,
        },
    );
    ScanFilter {
        min_ts: c.min_ts,
        max_ts: c.max_ts,
        values: c.values,
        matches_nothing: c.contradiction,
    }
}

/// Every filter prunes segments, row groups and pages, but DataFusion still applies it.
pub(crate) fn inexact(filters: &[&Expr]) -> Vec<TableProviderFilterPushDown> {
    vec![TableProviderFilterPushDown::Inexact; filters.len()]
}
