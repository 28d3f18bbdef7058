//! `vigil demo`: the main job on an embedded default. Generates a seeded synthetic cluster
//! with the brief's three seed attacks and their decoys, stores it in an embedded store,
//! runs the detection queries and prints what each found next to the ground truth.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use vigil::{Db, DbOptions, Durability, SignalKind, StoreOptions};
use vigil_synth::{Attack, Cluster, ClusterSpec, Scenario};

/// Marker file that tells a demo store from any other directory.
const MARKER: &str = "VIGIL_DEMO";

/// What to generate.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub pods: usize,
    pub hours: f64,
    pub seed: u64,
}

/// One detection: the SQL, and which column of its result names the culprit.
struct Detection {
    title: &'static str,
    attack: Attack,
    /// Column holding the pod (or, for lateral movement, the user).
    key: &'static str,
    sql: String,
}

fn detections(baseline_end: &str) -> Vec<Detection> {
    vec![
        Detection {
            title: "crypto-miner: hot CPU within 30 minutes of an untrusted pull (time-band join)",
            attack: Attack::CryptoMiner,
            key: "pod",
            sql: "SELECT e.namespace, e.pod, e.image, max(m.value) AS peak_cpu
FROM events e JOIN metrics m
  ON m.pod = e.pod AND m.ts BETWEEN e.ts AND e.ts + INTERVAL '30 minutes'
WHERE e.reason = 'Pulled' AND e.image NOT LIKE 'registry.corp.example/%'
  AND m.name = 'container_cpu_usage_cores' AND m.value > 0.9
GROUP BY 1, 2, 3 HAVING count(*) >= 30"
                .into(),
        },
        Detection {
            title: "the whole story per pod: untrusted pull, hot CPU, sensitive API call within an hour (MATCH_RECOGNIZE)",
            attack: Attack::CryptoMiner,
            key: "pod",
            sql: "SELECT * FROM signals MATCH_RECOGNIZE (
  PARTITION BY pod ORDER BY ts
  MEASURES pull.image AS image, FIRST(hot.ts) AS hot_at, api.verb AS verb, api.resource AS resource
  ONE ROW PER MATCH AFTER MATCH SKIP PAST LAST ROW
  PATTERN (pull x*? hot+ x*? api) WITHIN INTERVAL '1 hour'
  DEFINE pull AS kind = 'event' AND reason = 'Pulled' AND image NOT LIKE 'registry.corp.example/%',
         hot  AS kind = 'metric' AND name = 'container_cpu_usage_cores' AND value > 0.95,
         api  AS kind = 'audit' AND resource IN ('secrets', 'pods/exec')
)"
            .into(),
        },
        Detection {
            title: "command and control: new east-west traffic between namespaces, beaconing",
            attack: Attack::CommandAndControl,
            key: "pod",
            sql: format!(
                "WITH calls AS (
  SELECT namespace AS src, split_part(split_part(peer, '.', 2), ':', 1) AS dst, pod,
         CAST(ts AS BIGINT) AS t
  FROM spans WHERE span_kind = 'client' AND peer IS NOT NULL),
known AS (SELECT DISTINCT src, dst FROM calls WHERE t < CAST(TIMESTAMP '{baseline_end}' AS BIGINT)),
fresh AS (
  SELECT c.src, c.dst, c.pod, c.t - lag(c.t) OVER (PARTITION BY c.pod, c.dst ORDER BY c.t) AS gap
  FROM calls c LEFT JOIN known k ON c.src = k.src AND c.dst = k.dst
  WHERE k.src IS NULL AND c.src <> c.dst)
SELECT src, dst, pod, count(*) AS calls, round(avg(gap) / 1e9, 1) AS every_s
FROM fresh GROUP BY src, dst, pod
HAVING count(*) >= 10 AND stddev(gap) < 0.05 * avg(gap)"
            ),
        },
        Detection {
            title: "lateral movement: service accounts calling sensitive APIs they never called, with the pod's CPU then (ASOF JOIN)",
            attack: Attack::LateralMovement,
            key: "user",
            sql: format!(
                "WITH calls AS (
  SELECT ts, pod, user, verb, resource FROM audit WHERE user LIKE 'system:serviceaccount:%'),
known AS (SELECT DISTINCT user, verb, resource FROM calls WHERE ts < TIMESTAMP '{baseline_end}'),
fresh AS (
  SELECT c.* FROM calls c LEFT JOIN known k
    ON c.user = k.user AND c.verb = k.verb AND c.resource = k.resource
  WHERE k.user IS NULL AND c.resource IN ('secrets', 'pods/exec', 'clusterrolebindings'))
SELECT a.user, a.pod, a.verb, a.resource, a.ts, m.value AS cpu
FROM fresh a
ASOF JOIN (SELECT pod, ts, value FROM metrics WHERE name = 'container_cpu_usage_cores') m
  MATCH_CONDITION (a.ts >= m.ts) ON a.pod = m.pod
ORDER BY a.ts"
            ),
        },
    ]
}

/// Runs the demo in `dir`; returns true when every detection matched the ground truth.
pub fn run_demo(dir: &Path, options: &DemoOptions) -> Result<bool> {
    prepare_dir(dir)?;
    let spec = ClusterSpec {
        pods: options.pods,
        duration: Duration::from_secs_f64(options.hours * 3600.0),
        seed: options.seed,
        ..ClusterSpec::default()
    };
    if options.pods < 12 || options.hours < 1.5 {
        bail!("the demo needs at least 12 pods and 1.5 hours to place its scenarios");
    }
    let cluster = Cluster::new(spec);
    let db = Db::open_with(
        dir,
        DbOptions {
            store: StoreOptions {
                durability: Durability::Buffered,
                ..StoreOptions::default()
            },
            ..DbOptions::default()
        },
    )
    .with_context(|| format!("opening a store in {}", dir.display()))?;
    std::fs::write(
        dir.join(MARKER),
        "a `vigil demo` store; `vigil demo` may delete it\n",
    )?;

    println!(
        "vigil demo: {} pods on {} nodes, {} hours of telemetry (seed {}), stored in {}",
        cluster.pods.len(),
        cluster.nodes.len(),
        options.hours,
        options.seed,
        dir.display()
    );
    let started = Instant::now();
    let rows = generate(&db, &cluster)?;
    let injected = cluster.scenarios();
    for (kind, batch) in &injected.batches {
        db.write(*kind, batch)?;
    }
    db.flush()?;
    let total: usize = rows.iter().map(|(_, n)| n).sum();
    println!(
        "stored {total} rows ({}) in {:.1} s\n",
        rows.iter()
            .map(|(k, n)| format!("{n} {}", k.table_name()))
            .collect::<Vec<_>>()
            .join(", "),
        started.elapsed().as_secs_f64()
    );

    let baseline_end = rfc3339(injected.baseline_end_ns);
    let runtime = crate::cli::query_runtime()?;
    let mut all_good = true;
    for detection in detections(&baseline_end) {
        let started = Instant::now();
        let batches = runtime
            .block_on(db.query(&detection.sql))
            .with_context(|| format!("running: {}", detection.title))?;
        let elapsed = started.elapsed();
        all_good &= report(&detection, &batches, &injected.scenarios, elapsed)?;
    }
    db.close()?;
    println!(
        "{}",
        if all_good {
            "every attack found, no decoy reported"
        } else {
            "MISMATCH: see above"
        }
    );
    Ok(all_good)
}

/// Creates `dir`, or empties it if it holds an earlier demo; refuses anything else.
fn prepare_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        if !dir.is_dir() {
            bail!(
                "{} is a file, not a directory; pass --data-dir with a new or empty directory",
                dir.display()
            );
        }
        let empty = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .next()
            .is_none();
        if !empty {
            if !dir.join(MARKER).exists() {
                bail!(
                    "{} exists and is not a demo store; pass --data-dir with a new or empty directory",
                    dir.display()
                );
            }
            std::fs::remove_dir_all(dir)
                .with_context(|| format!("removing the earlier demo in {}", dir.display()))?;
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(())
}

/// Writes every kind's telemetry, with one progress bar per kind over simulated time.
fn generate(db: &Db, cluster: &Cluster) -> Result<Vec<(SignalKind, usize)>> {
    let progress = MultiProgress::new();
    let style = ProgressStyle::with_template("{prefix:>8} [{bar:30}] {percent:>3}% {msg}")?
        .progress_chars("=> ");
    let start = cluster.spec.start_ns;
    let span = cluster.spec.duration.as_secs().max(1);
    let mut counts = vec![];
    for kind in SignalKind::ALL {
        let bar = progress.add(ProgressBar::new(span));
        bar.set_style(style.clone());
        bar.set_prefix(kind.table_name());
        let mut rows = 0usize;
        for batch in cluster.batches(kind) {
            rows += batch.num_rows();
            db.write(kind, &batch)?;
            let ts = batch.column_by_name("ts").map(|c| {
                c.as_primitive::<arrow::datatypes::TimestampNanosecondType>()
                    .values()
                    .iter()
                    .copied()
                    .max()
                    .unwrap_or(start)
            });
            if let Some(ts) = ts {
                bar.set_position(((ts - start) / 1_000_000_000).clamp(0, span as i64) as u64);
            }
            bar.set_message(format!("{rows} rows"));
        }
        bar.set_position(span);
        bar.finish_with_message(format!("{rows} rows"));
        counts.push((kind, rows));
    }
    Ok(counts)
}

/// Prints a detection's result against the ground truth; true when they agree.
fn report(
    detection: &Detection,
    batches: &[RecordBatch],
    truth: &[Scenario],
    elapsed: Duration,
) -> Result<bool> {
    println!("== {}", detection.title);
    let mut found = BTreeSet::new();
    let options = FormatOptions::default().with_null("NULL");
    for batch in batches {
        let Some(key) = batch.column_by_name(detection.key) else {
            bail!(
                "the {} detection returned no `{}` column",
                detection.title,
                detection.key
            );
        };
        let key = key.as_string::<i32>();
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            if key.is_valid(row) {
                found.insert(key.value(row).to_string());
            }
            let cells: Vec<String> = batch
                .schema()
                .fields()
                .iter()
                .zip(&formatters)
                .map(|(f, fmt)| format!("{}={}", f.name(), fmt.value(row)))
                .collect();
            println!("   {}", cells.join("  "));
        }
    }
    let key_of = |s: &Scenario| {
        if detection.key == "user" {
            s.user.clone()
        } else {
            s.pod.clone()
        }
    };
    let attacks: BTreeSet<String> = truth
        .iter()
        .filter(|s| s.attack == detection.attack && !s.decoy)
        .map(key_of)
        .collect();
    let decoys: Vec<&Scenario> = truth
        .iter()
        .filter(|s| s.attack == detection.attack && s.decoy)
        .collect();
    let missed: Vec<&String> = attacks.difference(&found).collect();
    let false_alarms: Vec<&String> = found.difference(&attacks).collect();
    let decoys_reported: Vec<&&Scenario> = decoys
        .iter()
        .filter(|s| found.contains(&key_of(s)))
        .collect();
    for s in truth.iter().filter(|s| s.attack == detection.attack) {
        let hit = found.contains(&key_of(s));
        let verdict = match (s.decoy, hit) {
            (false, true) => "found   (attack)",
            (false, false) => "MISSED  (attack)",
            (true, false) => "ignored (decoy) ",
            (true, true) => "REPORTED (decoy)",
        };
        let who = if key_of(s).is_empty() {
            "-".to_string()
        } else {
            key_of(s)
        };
        println!("   {verdict}  {who}: {}", s.what);
    }
    let good = missed.is_empty() && false_alarms.is_empty() && decoys_reported.is_empty();
    println!(
        "   {} in {:.0} ms{}\n",
        if good {
            "matches the ground truth"
        } else {
            "DOES NOT match the ground truth"
        },
        elapsed.as_secs_f64() * 1000.0,
        if false_alarms.is_empty() {
            String::new()
        } else {
            format!("; also reported: {false_alarms:?}")
        }
    );
    Ok(good)
}

fn rfc3339(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let nanos = ns.rem_euclid(1_000_000_000) as u32;
    chrono::DateTime::from_timestamp(secs, nanos)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string())
        .unwrap_or_default()
}
