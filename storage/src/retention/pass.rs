//! One retention pass: every segment is judged against the policy at one instant.
//!
//! - A segment all of whose rows are past their rule (read from the manifest: time range,
//!   pods and metric names in its index) and that no hold touches is dropped whole.
//! - A segment that may hold some expired rows is first read in part (the columns that decide,
//!   not the values) to count what would go. If anything goes, the counts are logged, then the
//!   segment is rewritten without those rows, and the metric rows a rule downsamples become
//!   rollup rows in new `rollup` segments. The rewritten segment and the rollups replace the
//!   old segment in one synced manifest write, so after a crash either the old segment is
//!   live or the new ones are: no row is lost, counted twice or brought back.
//! - Rollups whose own keep has passed become coarser rollups, or go; the pass repeats
//!   until nothing more rolls.
//!
//! Hot rows are flushed first, so everything is in segments. Segment files replaced or
//! dropped are deleted when the last query reading them ends.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, AsArray, BooleanBuilder, RecordBatch, StringArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::TimestampNanosecondType;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::SignalKind;
use crate::error::{Result, StorageError};
use crate::retention::holds::Hold;
use crate::retention::policy::{RetentionPolicy, RetentionRule};
use crate::retention::rollup::{RollupBuilder, step_ns_of};
use crate::segment::Segment;
use crate::segment::writer::SegmentWriter;
use crate::store::shared::{Cause, PendingSegments, Task, VersionEdit};
use crate::store::{Shared, flush};
use crate::version::Version;
use vigil_model::time::nanos;

/// Rows per batch when reading and writing segments.
const BATCH_ROWS: usize = 8192;
/// (namespace, metric name) pairs a [`Judge`] remembers without hashing.
const RECENT: usize = 8;
/// Rollup segments span this many store windows (a day, with hourly windows).
const ROLLUP_WINDOWS: i64 = 24;
/// Passes over new rollups at most (one per downsampling level, and then some).
const MAX_ROUNDS: usize = 8;

/// What a pass did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// The instant the policy was applied at, nanoseconds.
    pub now_ns: i64,
    pub dry_run: bool,
    pub segments_dropped: usize,
    pub segments_rewritten: usize,
    pub rollup_segments_written: usize,
    /// Rows removed without a rollup, by kind.
    pub rows_deleted: BTreeMap<SignalKind, u64>,
    /// Rows (raw metrics or finer rollups) folded into coarser rollups and removed. A dry run
    /// counts the first step only (what raw rows become), and writes no rollup rows.
    pub rows_rolled_up: u64,
    pub rollup_rows_written: u64,
    /// Rows past their rule kept because a hold covers them.
    pub rows_held: u64,
    /// Bytes of segment files read, written, and given back (dropped or replaced files).
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub bytes_freed: u64,
}

impl RetentionReport {
    pub fn total_deleted(&self) -> u64 {
        self.rows_deleted.values().sum()
    }

    fn add(&mut self, other: &RetentionReport) {
        self.segments_dropped += other.segments_dropped;
        self.segments_rewritten += other.segments_rewritten;
        self.rollup_segments_written += other.rollup_segments_written;
        for (kind, n) in &other.rows_deleted {
            *self.rows_deleted.entry(*kind).or_default() += n;
        }
        self.rows_rolled_up += other.rows_rolled_up;
        self.rollup_rows_written += other.rollup_rows_written;
        self.rows_held += other.rows_held;
        self.bytes_read += other.bytes_read;
        self.bytes_written += other.bytes_written;
        self.bytes_freed += other.bytes_freed;
    }
}

impl std::fmt::Display for RetentionReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verb = if self.dry_run { "would" } else { "did" };
        writeln!(
            f,
            "retention at {} ({}):",
            crate::retention::format_instant(self.now_ns),
            if self.dry_run {
                "dry run, nothing changed"
            } else {
                "applied"
            }
        )?;
        if self.rows_deleted.is_empty() && self.rows_rolled_up == 0 {
            writeln!(f, "  nothing is past its rule")?;
        }
        for (kind, n) in &self.rows_deleted {
            writeln!(f, "  {verb} delete {n} {} rows", kind.table_name())?;
        }
        if self.rows_rolled_up > 0 && self.dry_run {
            writeln!(f, "  would downsample {} rows", self.rows_rolled_up)?;
        } else if self.rows_rolled_up > 0 {
            writeln!(
                f,
                "  did downsample {} rows into {} rollup rows",
                self.rows_rolled_up, self.rollup_rows_written
            )?;
        }
        if self.rows_held > 0 {
            writeln!(
                f,
                "  kept {} expired rows under legal holds",
                self.rows_held
            )?;
        }
        write!(
            f,
            "  segments: {} dropped, {} rewritten, {} rollup segments written; {} bytes freed",
            self.segments_dropped,
            self.segments_rewritten,
            self.rollup_segments_written,
            self.bytes_freed
        )
    }
}

/// What becomes of one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Keep,
    Delete,
    /// Into a rollup bucket of this many nanoseconds.
    Roll(i64),
}

fn bucket_end(ts: i64, step: i64) -> i64 {
    (ts.div_euclid(step) * step).saturating_add(step)
}

/// The fate of a row of `rule` at `ts` (`step_ns` 0 for raw rows, the bucket for rollups).
fn action(rule: &RetentionRule, step_ns: i64, ts: i64, now: i64) -> Action {
    let cutoff = |keep: Duration| now.saturating_sub(nanos(keep));
    if step_ns == 0 {
        return match rule.downsample.first() {
            None if ts < cutoff(rule.keep) => Action::Delete,
            None => Action::Keep,
            Some(first) => {
                let step = nanos(first.step);
                if bucket_end(ts, step) <= cutoff(rule.keep) {
                    Action::Roll(step)
                } else {
                    Action::Keep
                }
            }
        };
    }
    match rule
        .downsample
        .iter()
        .position(|d| nanos(d.step) == step_ns)
    {
        Some(i) => {
            let limit = cutoff(rule.downsample[i].keep);
            match rule.downsample.get(i + 1) {
                Some(next) => {
                    let step = nanos(next.step);
                    if bucket_end(ts, step) <= limit {
                        Action::Roll(step)
                    } else {
                        Action::Keep
                    }
                }
                None if ts.saturating_add(step_ns) <= limit => Action::Delete,
                None => Action::Keep,
            }
        }
        // A step the rule no longer names: kept as long as anything of the rule is.
        None if ts.saturating_add(step_ns) <= cutoff(rule.longest_keep()) => Action::Delete,
        None => Action::Keep,
    }
}

/// The newest `ts` a row of `rule` (of `kind`) can have and still be touched by a pass at
/// `now`: rows newer than it are kept.
fn touch_limit(rule: &RetentionRule, kind: SignalKind, now: i64) -> i64 {
    let keep = if kind == SignalKind::Rollup {
        rule.downsample
            .iter()
            .map(|d| d.keep)
            .min()
            .unwrap_or(rule.keep)
    } else {
        rule.keep
    };
    now.saturating_sub(nanos(keep))
}

/// Looks up rules per (namespace, metric name), caching the answer.
struct Judge<'a> {
    policy: &'a RetentionPolicy,
    kind: SignalKind,
    now: i64,
    cache: HashMap<String, HashMap<String, Option<usize>, ahash::RandomState>, ahash::RandomState>,
    /// The last few pairs looked up: rows come by pod, so a namespace and a handful of metric
    /// names repeat row after row, and comparing a few short strings beats hashing them.
    recent: Vec<(String, String, Option<usize>)>,
    next_recent: usize,
}

impl<'a> Judge<'a> {
    fn new(policy: &'a RetentionPolicy, kind: SignalKind, now: i64) -> Self {
        Judge {
            policy,
            kind,
            now,
            cache: HashMap::default(),
            recent: Vec::with_capacity(RECENT),
            next_recent: 0,
        }
    }

    fn rule(&mut self, namespace: Option<&str>, name: Option<&str>) -> Option<&'a RetentionRule> {
        let (ns_key, name_key) = (namespace.unwrap_or(""), name.unwrap_or(""));
        if let Some((_, _, i)) = self
            .recent
            .iter()
            .find(|(ns, n, _)| n == name_key && ns == ns_key)
        {
            return i.map(|i| &self.policy.rules()[i]);
        }
        let index = match self.cache.get(ns_key).and_then(|m| m.get(name_key)) {
            Some(i) => *i,
            None => {
                let i = self
                    .policy
                    .rule_for(self.kind, namespace.filter(|n| !n.is_empty()), name)
                    .map(|(n, _)| n - 1);
                self.cache
                    .entry(ns_key.to_string())
                    .or_default()
                    .insert(name_key.to_string(), i);
                i
            }
        };
        let entry = (ns_key.to_string(), name_key.to_string(), index);
        if self.recent.len() < RECENT {
            self.recent.push(entry);
        } else {
            self.recent[self.next_recent] = entry;
            self.next_recent = (self.next_recent + 1) % RECENT;
        }
        index.map(|i| &self.policy.rules()[i])
    }

    /// Decides every row of `batch`, holds included; returns how many rows holds kept.
    fn rows(
        &mut self,
        batch: &RecordBatch,
        holds: &[&Hold],
        mut each: impl FnMut(usize, Action),
    ) -> u64 {
        let string = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_string_opt::<i32>())
        };
        let (namespaces, names, pods) = (string("namespace"), string("name"), string("pod"));
        fn value(col: Option<&StringArray>, row: usize) -> Option<&str> {
            col.and_then(|c| c.is_valid(row).then(|| c.value(row)))
        }
        let Some(ts) = batch
            .column_by_name("ts")
            .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
        else {
            return 0;
        };
        let rollup = self.kind == SignalKind::Rollup;
        let mut held = 0;
        for row in 0..batch.num_rows() {
            let namespace = value(namespaces, row);
            let Some(rule) = self.rule(namespace, value(names, row)) else {
                each(row, Action::Keep);
                continue;
            };
            let step = if rollup { step_ns_of(batch, row) } else { 0 };
            let t = ts.value(row);
            let mut decided = action(rule, step, t, self.now);
            // A rollup row is held when any instant of its bucket is.
            let last = t.saturating_add(step.saturating_sub(1).max(0));
            if decided != Action::Keep
                && holds
                    .iter()
                    .any(|h| h.covers(namespace, value(pods, row), t, last))
            {
                held += 1;
                decided = Action::Keep;
            }
            each(row, decided);
        }
        held
    }
}

/// What the manifest alone says about a segment.
#[derive(Debug, PartialEq, Eq)]
enum Plan {
    /// No row can be past its rule.
    Skip,
    /// Every row is past its rule, none downsampled, none held.
    Drop,
    /// Some rows may be past their rule: read to know.
    Read,
}

fn plan(
    shared: &Shared,
    policy: &RetentionPolicy,
    segment: &Segment,
    holds: &[&Hold],
    now: i64,
) -> Plan {
    let meta = segment.meta();
    let kind = meta.kind;
    if !policy.covers(kind) {
        return Plan::Skip;
    }
    // Namespaces from the pods in the index; rows without a pod may have any namespace.
    let mut namespaces: Vec<Option<String>> = Vec::new();
    let mut rows_with_pod = 0u64;
    for (id, rows) in &meta.index.pods {
        rows_with_pod += rows.len();
        if let Some(key) = shared.pods().key(*id) {
            let ns = (!key.namespace.is_empty()).then_some(key.namespace);
            if !namespaces.contains(&ns) {
                namespaces.push(ns);
            }
        }
    }
    let all_namespaces_known = rows_with_pod == meta.rows;
    let names: Option<Vec<Option<String>>> = match kind {
        SignalKind::Metric | SignalKind::Rollup => match meta.index.columns.get("name") {
            Some(crate::segment::ColumnIndex::Values(map)) => {
                Some(map.keys().cloned().map(Some).collect())
            }
            _ => None,
        },
        _ => Some(vec![None]),
    };
    let (Some(names), true) = (names, all_namespaces_known) else {
        return Plan::Read;
    };
    let mut judge = Judge::new(policy, kind, now);
    let mut any_touched = false;
    let mut all_dropped = kind != SignalKind::Rollup;
    for ns in &namespaces {
        for name in &names {
            match judge.rule(ns.as_deref(), name.as_deref()) {
                None => all_dropped = false,
                Some(rule) => {
                    if meta.min_ts <= touch_limit(rule, kind, now) {
                        any_touched = true;
                    }
                    if !rule.downsample.is_empty()
                        || action(rule, 0, meta.max_ts, now) != Action::Delete
                    {
                        all_dropped = false;
                    }
                }
            }
        }
    }
    let held = holds.iter().any(|h| {
        h.overlaps(meta.min_ts, meta.max_ts)
            && shared
                .pods()
                .ids_named(&h.pod)
                .iter()
                .any(|id| meta.index.pods.contains_key(id))
    });
    if all_dropped && !held && !namespaces.is_empty() {
        Plan::Drop
    } else if any_touched {
        Plan::Read
    } else {
        Plan::Skip
    }
}

/// Runs a pass at the store clock's current time.
pub(crate) fn run(shared: &Shared, dry_run: bool) -> Result<RetentionReport> {
    let _serial = shared.lock(Task::Retention);
    let policy = &shared.options().retention.policy;
    let now = shared.now_ns();
    let mut report = RetentionReport {
        now_ns: now,
        dry_run,
        ..Default::default()
    };
    if policy.is_empty() {
        return Ok(report);
    }
    let holds: Vec<Hold> = shared.holds()?;
    if !dry_run {
        flush::flush(shared)?;
    }
    for i in 0..MAX_ROUNDS {
        // One snapshot per round: in a dry run, its hot rows and segments hold every row once
        // even if a flush runs meanwhile.
        let version = shared.current();
        if dry_run {
            count_hot(&version, policy, &holds, now, &mut report);
        }
        let round = round(shared, policy, &holds, now, dry_run, &version, i == 0)?;
        report.add(&round);
        // Rollups just written may themselves be past their keep (old data): go again.
        if dry_run || round.rollup_rows_written == 0 {
            break;
        }
    }
    if !dry_run && report.rows_held > 0 {
        tracing::info!(
            rows_held = report.rows_held,
            holds = holds.len(),
            "retention: expired rows kept by legal holds"
        );
    }
    if !dry_run && (report.segments_dropped + report.segments_rewritten) > 0 {
        if report.rollup_segments_written > 0 {
            // Merge the small rollup segments just written (the background worker would too).
            crate::store::compaction::compact(shared, shared.options().compaction_min_inputs)?;
        }
        shared.compact_manifest();
        tracing::info!(
            rows_deleted = report.total_deleted(),
            rows_rolled_up = report.rows_rolled_up,
            rollup_rows = report.rollup_rows_written,
            rows_held = report.rows_held,
            segments_dropped = report.segments_dropped,
            segments_rewritten = report.segments_rewritten,
            bytes_freed = report.bytes_freed,
            "retention pass done"
        );
    }
    Ok(report)
}

/// One round over the segments of `version`: the first over all of them, later ones (after
/// rollups were written) over rollup segments only.
fn round(
    shared: &Shared,
    policy: &RetentionPolicy,
    holds: &[Hold],
    now: i64,
    dry_run: bool,
    version: &Version,
    first: bool,
) -> Result<RetentionReport> {
    let mut report = RetentionReport::default();
    let mut drops: Vec<Arc<Segment>> = Vec::new();
    let mut reads: Vec<Arc<Segment>> = Vec::new();
    for segment in version.segments.iter() {
        let meta = segment.meta();
        if !first && meta.kind != SignalKind::Rollup {
            continue;
        }
        let near: Vec<&Hold> = holds
            .iter()
            .filter(|h| h.overlaps(meta.min_ts, meta.max_ts))
            .collect();
        match plan(shared, policy, segment, &near, now) {
            Plan::Skip => {}
            Plan::Drop => drops.push(Arc::clone(segment)),
            Plan::Read => reads.push(Arc::clone(segment)),
        }
    }
    if dry_run {
        log_drops(&drops, true);
    } else if !drops.is_empty() {
        drops = drop_segments(shared, drops)?;
    }
    for s in &drops {
        *report.rows_deleted.entry(s.meta().kind).or_default() += s.meta().rows;
        report.bytes_freed += s.meta().file_size;
    }
    report.segments_dropped = drops.len();

    for segment in reads {
        let mut judge = Judge::new(policy, segment.meta().kind, now);
        let meta = segment.meta();
        let near: Vec<&Hold> = holds
            .iter()
            .filter(|h| h.overlaps(meta.min_ts, meta.max_ts))
            .collect();
        let counts = count_segment(&segment, &mut judge, &near)?;
        report.bytes_read += meta.file_size;
        if counts.deleted == 0 && counts.rolled == 0 {
            report.rows_held += counts.held;
            continue;
        }
        tracing::info!(
            segment = %meta.file_name(),
            kind = meta.kind.table_name(),
            rows = meta.rows,
            deleting = counts.deleted,
            downsampling = counts.rolled,
            held = counts.held,
            dry_run,
            "retention: {} rows past their rule",
            if dry_run { "would remove" } else { "removing" }
        );
        if dry_run {
            *report.rows_deleted.entry(meta.kind).or_default() += counts.deleted;
            report.rows_rolled_up += counts.rolled;
            report.rows_held += counts.held;
            report.segments_rewritten += 1;
            continue;
        }
        let _no_compaction = shared.lock(Task::Compaction);
        let live = shared
            .current()
            .segments
            .iter()
            .any(|s| s.meta().id == meta.id);
        if !live {
            continue;
        }
        let done = rewrite(shared, &segment, &mut judge, &near)?;
        report.add(&done);
    }
    Ok(report)
}

#[derive(Debug, Default)]
struct Counts {
    deleted: u64,
    rolled: u64,
    held: u64,
}

/// Reads only the columns that decide (ts, namespace, pod, name, step) and counts.
fn count_segment(segment: &Segment, judge: &mut Judge<'_>, holds: &[&Hold]) -> Result<Counts> {
    let path = segment.path();
    let file = File::open(path).map_err(|e| StorageError::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
    let wanted = ["ts", "namespace", "pod", "name", "step_seconds"];
    let roots: Vec<usize> = builder
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| wanted.contains(&f.name().as_str()))
        .map(|(i, _)| i)
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(BATCH_ROWS)
        .build()?;
    let mut counts = Counts::default();
    for batch in reader {
        let batch = batch?;
        counts.held += judge.rows(&batch, holds, |_, a| match a {
            Action::Keep => {}
            Action::Delete => counts.deleted += 1,
            Action::Roll(_) => counts.rolled += 1,
        });
    }
    Ok(counts)
}

/// In a dry run, hot rows (not yet in segments) are judged where they are.
fn count_hot(
    version: &Version,
    policy: &RetentionPolicy,
    holds: &[Hold],
    now: i64,
    report: &mut RetentionReport,
) {
    let holds: Vec<&Hold> = holds.iter().collect();
    for hot in version.hot.iter() {
        let mut judge = Judge::new(policy, hot.kind, now);
        let (mut deleted, mut rolled) = (0, 0);
        report.rows_held += judge.rows(&hot.batch, &holds, |_, a| match a {
            Action::Keep => {}
            Action::Delete => deleted += 1,
            Action::Roll(_) => rolled += 1,
        });
        if deleted > 0 {
            *report.rows_deleted.entry(hot.kind).or_default() += deleted;
        }
        report.rows_rolled_up += rolled;
    }
}

/// Writes rollup rows into the rollup segment of their window, starting it if new.
fn write_rollups(
    shared: &Shared,
    pending: &mut PendingSegments<'_>,
    rollups: &mut BTreeMap<i64, SegmentWriter>,
    window: i64,
    batch: Option<RecordBatch>,
) -> Result<()> {
    let Some(batch) = batch else { return Ok(()) };
    for (start, part) in flush::split_by_window(&batch, window)? {
        let writer = match rollups.entry(start) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(pending.new_segment(SignalKind::Rollup)?)
            }
        };
        shared
            .pods()
            .with_lookup(|lookup| writer.write(&part, lookup))?;
    }
    Ok(())
}

/// Replaces `segment` by its rows that stay, plus rollups of the rows that roll, in one
/// manifest edit. The caller holds the compaction lock and checked that it is live.
fn rewrite(
    shared: &Shared,
    segment: &Arc<Segment>,
    judge: &mut Judge<'_>,
    holds: &[&Hold],
) -> Result<RetentionReport> {
    let meta = segment.meta();
    let mut pending = shared.pending();
    // The rows stay in their order, so the kept ones are written in the current order.
    let reader = segment.read_in_order(BATCH_ROWS)?;
    // Rollups are ~60x fewer rows than their source: a day of them shares a window, so
    // compaction merges the small rollup segments of one day.
    let window = shared.options().window_ns().saturating_mul(ROLLUP_WINDOWS);
    let mut report = RetentionReport::default();
    let mut kept: Option<SegmentWriter> = None;
    let mut rollups: BTreeMap<i64, SegmentWriter> = BTreeMap::new();
    let mut builder = match meta.kind {
        SignalKind::Metric | SignalKind::Rollup => Some(RollupBuilder::new()?),
        _ => None,
    };
    for batch in reader {
        let batch = batch?.with_schema(crate::schema::kind_schema(meta.kind))?;
        let mut keep = BooleanBuilder::with_capacity(batch.num_rows());
        let mut series = None;
        let mut deleted = 0u64;
        let mut rolled: Vec<(usize, i64)> = Vec::new();
        report.rows_held += judge.rows(&batch, holds, |row, a| match a {
            Action::Keep => keep.append_value(true),
            Action::Delete => {
                keep.append_value(false);
                deleted += 1;
            }
            Action::Roll(step) => {
                keep.append_value(false);
                rolled.push((row, step));
            }
        });
        if deleted > 0 {
            *report.rows_deleted.entry(meta.kind).or_default() += deleted;
        }
        report.rows_rolled_up += rolled.len() as u64;
        if let Some(builder) = builder.as_mut()
            && !rolled.is_empty()
        {
            let rows = series.get_or_insert(builder.series(&batch)?);
            builder.add(&batch, rows, &rolled);
            if builder.pending() >= BATCH_ROWS {
                let full = builder.take(false)?;
                write_rollups(shared, &mut pending, &mut rollups, window, full)?;
            }
        }
        let kept_rows = filter_record_batch(&batch, &keep.finish())?;
        if kept_rows.num_rows() > 0 {
            let writer = match kept.as_mut() {
                Some(w) => w,
                None => kept.insert(pending.new_segment(meta.kind)?),
            };
            shared
                .pods()
                .with_lookup(|lookup| writer.write(&kept_rows, lookup))?;
        }
    }
    if let Some(builder) = builder.as_mut() {
        let rest = builder.take(true)?;
        write_rollups(shared, &mut pending, &mut rollups, window, rest)?;
    }
    let mut edit = VersionEdit::new(Cause::RetentionRewrite);
    if let Some(writer) = kept {
        edit.add(writer.finish(meta.window_start, meta.max_seq, meta.level)?);
    }
    for (start, writer) in rollups {
        let out = writer.finish(start, meta.max_seq, 0)?;
        report.rollup_rows_written += out.rows;
        report.rollup_segments_written += 1;
        edit.add(out);
    }
    report.segments_rewritten = 1;
    report.bytes_written = edit.added().iter().map(|m| m.file_size).sum();
    report.bytes_freed = meta.file_size;
    edit.remove(Arc::clone(segment));
    shared.apply(edit, pending)?;
    Ok(report)
}

/// Logs whole segments about to be (or, dry, that would be) dropped, per kind.
fn log_drops(drops: &[Arc<Segment>], dry_run: bool) {
    let mut by_kind: BTreeMap<SignalKind, (usize, u64, i64)> = BTreeMap::new();
    for s in drops {
        let e = by_kind.entry(s.meta().kind).or_insert((0, 0, i64::MIN));
        e.0 += 1;
        e.1 += s.meta().rows;
        e.2 = e.2.max(s.meta().max_ts);
    }
    for (kind, (segments, rows, newest)) in &by_kind {
        tracing::warn!(
            kind = kind.table_name(),
            segments,
            rows,
            newest = %crate::retention::format_instant(*newest),
            dry_run,
            "retention: {} whole segments past their rule",
            if dry_run { "would drop" } else { "dropping" }
        );
    }
}

/// Removes wholly expired segments (those still live) from the manifest in one edit, after
/// logging them; returns the ones removed.
fn drop_segments(shared: &Shared, drops: Vec<Arc<Segment>>) -> Result<Vec<Arc<Segment>>> {
    let _no_compaction = shared.lock(Task::Compaction);
    let live: HashSet<u64> = shared
        .current()
        .segments
        .iter()
        .map(|s| s.meta().id)
        .collect();
    let drops: Vec<Arc<Segment>> = drops
        .into_iter()
        .filter(|s| live.contains(&s.meta().id))
        .collect();
    if drops.is_empty() {
        return Ok(drops);
    }
    log_drops(&drops, false);
    let mut edit = VersionEdit::new(Cause::RetentionDrop);
    for s in &drops {
        edit.remove(Arc::clone(s));
    }
    shared.apply(edit, shared.pending())?;
    Ok(drops)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000_000_000;
    const DAY: i64 = 1440 * MIN;

    #[test]
    fn rows_roll_only_once_their_whole_bucket_is_past_keep() {
        let rule = RetentionRule::new(SignalKind::Metric, Duration::from_secs(86_400))
            .downsample(Duration::from_secs(60), Duration::from_secs(7 * 86_400))
            .downsample(Duration::from_secs(3600), Duration::from_secs(30 * 86_400));
        let now = 10 * DAY;
        let cutoff = now - DAY;
        assert_eq!(action(&rule, 0, cutoff - MIN, now), Action::Roll(MIN));
        assert_eq!(action(&rule, 0, cutoff - MIN + 1, now), Action::Roll(MIN));
        assert_eq!(action(&rule, 0, cutoff, now), Action::Keep);
        // 1m rollups go to 1h after 7 days, once their hour is over.
        assert_eq!(
            action(&rule, MIN, now - 8 * DAY, now),
            Action::Roll(60 * MIN)
        );
        assert_eq!(
            action(&rule, MIN, now - 7 * DAY - MIN, now),
            Action::Roll(60 * MIN)
        );
        assert_eq!(action(&rule, MIN, now - 7 * DAY + MIN, now), Action::Keep);
        // 1h rollups go after 30 days.
        assert_eq!(action(&rule, 60 * MIN, now - 31 * DAY, now), Action::Delete);
        assert_eq!(action(&rule, 60 * MIN, now - 29 * DAY, now), Action::Keep);
        // A step no longer configured lives as long as the rule's longest keep.
        assert_eq!(action(&rule, 5 * MIN, now - 29 * DAY, now), Action::Keep);
        assert_eq!(action(&rule, 5 * MIN, now - 31 * DAY, now), Action::Delete);
        let plain = RetentionRule::new(SignalKind::Log, Duration::from_secs(86_400));
        assert_eq!(action(&plain, 0, cutoff - 1, now), Action::Delete);
        assert_eq!(action(&plain, 0, cutoff, now), Action::Keep);
    }
}
