//! The columns that name a metric series.
//!
//! A series is every value of these columns together: two samples with the same values of all
//! of them belong to the same series. Rollups are written per series and bucket, and the
//! rollup views (`metrics_1m`, `metrics_1h`) group by them.

/// The series columns, in schema order: every rollup column but `ts`, `step_seconds` and the
/// aggregates.
pub const SERIES_COLUMNS: &[&str] = &[
    "cluster",
    "namespace",
    "pod",
    "container",
    "node",
    "attributes",
    "name",
    "metric_type",
    "unit",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SignalKind;
    use crate::schema::{column, columns};

    #[test]
    fn series_columns_are_rollup_columns_in_schema_order() {
        let order: Vec<&str> = columns(SignalKind::Rollup)
            .map(|c| c.name)
            .filter(|n| SERIES_COLUMNS.contains(n))
            .collect();
        assert_eq!(order, SERIES_COLUMNS);
        for name in SERIES_COLUMNS {
            assert_eq!(
                column(SignalKind::Rollup, name).map(|c| c.ty),
                column(SignalKind::Metric, name).map(|c| c.ty),
                "`{name}` has the same type in metrics and rollups"
            );
        }
    }
}
