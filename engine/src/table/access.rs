//! Turns the rows the segment index selected into a Parquet access plan: row groups to skip,
//! and within the others the runs of rows to read, so the reader decodes only those pages.

use datafusion::datasource::physical_plan::parquet::{ParquetAccessPlan, RowGroupAccess};
use parquet::arrow::arrow_reader::{RowSelection, RowSelector};
use vigil_storage::SegmentScan;

/// The access plan of one segment scan, or `None` when every row is read.
pub fn access_plan(scan: &SegmentScan) -> Option<ParquetAccessPlan> {
    let meta = scan.segment.meta();
    if scan.rows.is_none() && scan.row_groups.iter().all(|&read| read) {
        return None;
    }
    let mut groups = Vec::with_capacity(meta.row_groups.len());
    let mut start = 0u64;
    for (i, &n) in meta.row_groups.iter().enumerate() {
        let end = start + n;
        let access = if !scan.row_groups.get(i).copied().unwrap_or(true) {
            RowGroupAccess::Skip
        } else {
            match &scan.rows {
                None => RowGroupAccess::Scan,
                Some(rows) => selection(rows, start, end),
            }
        };
        groups.push(access);
        start = end;
    }
    Some(ParquetAccessPlan::new(groups))
}

/// The selection of rows `[start, end)` of the segment that are in `rows`, relative to `start`.
fn selection(rows: &vigil_storage::roaring::RoaringBitmap, start: u64, end: u64) -> RowGroupAccess {
    let lo = u32::try_from(start).unwrap_or(u32::MAX);
    let hi = u32::try_from(end).unwrap_or(u32::MAX);
    let selected = rows.range_cardinality(lo..hi);
    if selected == 0 {
        return RowGroupAccess::Skip;
    }
    if selected == end - start {
        return RowGroupAccess::Scan;
    }
    let mut selectors = Vec::new();
    let mut cursor = lo; // next row not yet described
    let mut run: Option<(u32, u32)> = None; // [first, last] of the current selected run
    // Run by run (the bitmap's own runs end at its 65,536-row containers: joined here).
    let mut runs = rows.range(lo..hi);
    while let Some(next) = runs.next_range() {
        let (start, end) = next.into_inner();
        match run {
            Some((first, last)) if start == last + 1 => run = Some((first, end)),
            Some((first, last)) => {
                push_run(&mut selectors, &mut cursor, first, last);
                run = Some((start, end));
            }
            None => run = Some((start, end)),
        }
    }
    if let Some((first, last)) = run {
        push_run(&mut selectors, &mut cursor, first, last);
    }
    if cursor < hi {
        selectors.push(RowSelector::skip((hi - cursor) as usize));
    }
    RowGroupAccess::Selection(RowSelection::from(selectors))
}

fn push_run(selectors: &mut Vec<RowSelector>, cursor: &mut u32, first: u32, last: u32) {
    if first > *cursor {
        selectors.push(RowSelector::skip((first - *cursor) as usize));
    }
    selectors.push(RowSelector::select((last - first + 1) as usize));
    *cursor = last + 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn describe(access: RowGroupAccess) -> String {
        match access {
            RowGroupAccess::Skip => "skip".into(),
            RowGroupAccess::Scan => "scan".into(),
            RowGroupAccess::Selection(s) => {
                let parts: Vec<String> = s
                    .iter()
                    .map(|r| format!("{}{}", if r.skip { "-" } else { "+" }, r.row_count))
                    .collect();
                parts.join(" ")
            }
        }
    }

    #[test]
    fn runs_become_selectors_relative_to_the_row_group() {
        let rows: vigil_storage::roaring::RoaringBitmap =
            [12u32, 13, 14, 17, 19].into_iter().collect();
        assert_eq!(describe(selection(&rows, 10, 20)), "-2 +3 -2 +1 -1 +1");
        assert_eq!(describe(selection(&rows, 0, 10)), "skip");
        let all: vigil_storage::roaring::RoaringBitmap = (20u32..30).collect();
        assert_eq!(describe(selection(&all, 20, 30)), "scan");
        assert_eq!(describe(selection(&all, 25, 35)), "+5 -5");
        // A run across the bitmap's 65,536-row containers is one selector.
        let across: vigil_storage::roaring::RoaringBitmap = (65_530u32..65_540).collect();
        assert_eq!(describe(selection(&across, 65_520, 65_550)), "-10 +10 -10");
    }
}
