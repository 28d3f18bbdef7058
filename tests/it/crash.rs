//! Crash consistency: a child process writes in `sync` mode with flushes and compactions
//! running, and is killed with SIGKILL at random moments, or aborted at named crash points
//! inside the flush, compaction and commit protocols and at every step of the manifest edit.
//! After every crash the store is reopened and every acknowledged batch must be there exactly
//! once, and no batch may be there in part. Retention passes run in the child all along.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use arrow::array::{AsArray, Float64Array};
use arrow::datatypes::Int64Type;
use rand::{Rng, SeedableRng};
use vigil::{Db, DbOptions, StoreOptions};
use vigil_tests::crash_batch_rows;

use crate::support::runtime;

/// Rounds of random SIGKILLs (at least 20, as the store's contract asks); the long campaign
/// (`tests/crash_campaign.sh`) sets `VIGIL_CRASH_ROUNDS=1000`.
fn kill_rounds() -> u64 {
    std::env::var("VIGIL_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24)
}

/// Named crash points, each used for one round (the child aborts there).
const CRASH_POINTS: &[&str] = &[
    "segment::before_fsync=return",
    "flush::after_segment_write=return",
    "flush::before_manifest=return",
    "flush::after_manifest=return",
    "compaction::before_manifest=return",
    "compaction::after_manifest=return",
    "commit::before_write=20*off->return",
    "commit::after_write=20*off->return",
    // The steps of the manifest edit protocol every flush and compaction follows.
    "edit::after_reserve=return",
    "edit::before_commit=return",
    "edit::after_commit=return",
    "edit::after_publish=return",
    "edit::after_reserve=3*off->return",
    "edit::after_commit=3*off->return",
];

struct Round {
    acked: BTreeSet<u64>,
    /// Whether the child was still running when killed (false: it aborted itself).
    killed: bool,
}

/// Runs one child until `deadline` (then SIGKILL) or until it dies by itself.
fn run_child(
    dir: &std::path::Path,
    first_id: u64,
    failpoint: Option<&str>,
    run_for: Duration,
) -> Round {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_crash_writer"));
    cmd.arg(dir).arg(first_id.to_string()).arg("4");
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    if let Some(fp) = failpoint {
        cmd.env("FAILPOINTS", fp);
    }
    let mut child = cmd.spawn().expect("spawn crash_writer");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            match line {
                Ok(l) => {
                    if tx.send(l).is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    });
    // Wait for the store to open before the clock starts.
    let ready_deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < ready_deadline {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(line) if line == "ready" => break,
            _ => {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
            }
        }
    }
    let deadline = Instant::now() + run_for;
    let mut killed = false;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if Instant::now() >= deadline {
            child.kill().expect("SIGKILL the child");
            killed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.wait();
    let _ = reader.join();
    let acked = rx
        .try_iter()
        .filter_map(|l| l.strip_prefix("ack ").and_then(|id| id.parse().ok()))
        .collect();
    Round { acked, killed }
}

/// Counts the rows of every batch in the store.
fn batches_in_store(dir: &std::path::Path) -> BTreeMap<u64, i64> {
    let options = DbOptions {
        store: StoreOptions {
            background: false,
            ..StoreOptions::default()
        },
        ..DbOptions::default()
    };
    let db = Db::open_with(dir, options).expect("the store reopens after a crash");
    let rt = runtime();
    let batches = rt
        .block_on(db.query("SELECT value, count(*) AS n FROM metrics GROUP BY value"))
        .expect("query after crash");
    let mut out = BTreeMap::new();
    for b in &batches {
        let values = b
            .column(0)
            .as_any()
            .downcast_ref::<Float64Array>()
            .expect("f64");
        let counts = b.column(1).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            out.insert(values.value(i) as u64, counts.value(i));
        }
    }
    db.verify()
        .expect("every segment matches its manifest entry");
    db.close().expect("close");
    out
}

#[test]
fn acknowledged_writes_survive_sigkill_and_crash_points_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_c0de);
    let mut all_acked = BTreeSet::new();
    let kill_rounds = kill_rounds();
    let rounds: Vec<Option<&str>> = (0..kill_rounds)
        .map(|_| None)
        .chain(CRASH_POINTS.iter().map(|p| Some(*p)))
        .collect();
    let mut kills = 0;
    for (round, failpoint) in rounds.iter().enumerate() {
        let first_id = (round as u64 + 1) * 1_000_000;
        let run_for = Duration::from_millis(rng.random_range(150..1_500));
        let result = run_child(dir.path(), first_id, *failpoint, run_for);
        if result.killed {
            kills += 1;
        }
        if failpoint.is_some() && result.killed {
            // The crash point was not reached in time; the round still counts as a kill.
            eprintln!("round {round}: {failpoint:?} not reached before the kill");
        }
        all_acked.extend(result.acked.iter().copied());

        let stored = batches_in_store(dir.path());
        for id in &all_acked {
            let n = stored.get(id).copied().unwrap_or(0);
            assert_eq!(
                n,
                crash_batch_rows(*id) as i64,
                "round {round} ({failpoint:?}): acknowledged batch {id} has {n} rows, expected {}",
                crash_batch_rows(*id)
            );
        }
        for (id, n) in &stored {
            assert_eq!(
                *n,
                crash_batch_rows(*id) as i64,
                "round {round} ({failpoint:?}): batch {id} is stored partially or twice ({n} rows)"
            );
        }
    }
    assert!(
        kills >= kill_rounds as usize,
        "only {kills} SIGKILL rounds ran"
    );
    assert!(
        all_acked.len() > 100,
        "too few writes were acknowledged to mean anything: {}",
        all_acked.len()
    );
}
