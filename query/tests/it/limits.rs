//! Statements that would take a process down: expression chains thousands of terms long, and
//! CPU-bound queries that only an [`Interrupt`] inside the plan can end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::physical_plan::{collect, execute_stream};
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use vigil_query::interrupt::{Interrupt, Interrupted, interruptible};
use vigil_query::sql::depth::MAX_DEPTH;
use vigil_query::{SessionOptions, new_context};

fn context_with_t(rows: i64) -> SessionContext {
    let ctx = new_context(&SessionOptions {
        target_partitions: 2,
        ..SessionOptions::default()
    })
    .expect("context");
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![Arc::new(Int64Array::from_iter_values(0..rows))],
    )
    .expect("batch");
    let table = MemTable::try_new(schema, vec![vec![batch]]).expect("table");
    ctx.register_table("t", Arc::new(table)).expect("register");
    ctx
}

async fn one_value(ctx: &SessionContext, sql: &str) -> i64 {
    let batches = vigil_query::sql::sql(ctx, sql)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .collect()
        .await
        .expect("run");
    let column = batches[0].column(0);
    column
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("int64")
        .value(0)
}

/// Runs `f` on a thread with a default-sized (2 MiB) stack, as a tokio worker has.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .expect("thread")
        .join()
        .expect("no panic")
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

#[test]
fn ten_thousand_terms_of_plus_plan_and_add_up() {
    let sum = on_small_stack(|| {
        let ctx = context_with_t(3);
        let terms = vec!["1"; 10_000].join(" + ");
        block_on(one_value(&ctx, &format!("SELECT {terms}")))
    });
    assert_eq!(sum, 10_000);
}

#[test]
fn ten_thousand_or_terms_filter_as_an_in_list_would() {
    let counts = on_small_stack(|| {
        let ctx = context_with_t(20_000);
        let ors: Vec<String> = (0..10_000).map(|i| format!("x = {}", i * 2)).collect();
        let list: Vec<String> = (0..10_000).map(|i| (i * 2).to_string()).collect();
        block_on(async {
            (
                one_value(
                    &ctx,
                    &format!("SELECT count(*) FROM t WHERE {}", ors.join(" OR ")),
                )
                .await,
                one_value(
                    &ctx,
                    &format!("SELECT count(*) FROM t WHERE x IN ({})", list.join(", ")),
                )
                .await,
            )
        })
    });
    assert_eq!(counts, (10_000, 10_000));
}

#[test]
fn a_chain_at_the_depth_limit_plans_and_runs_on_a_small_stack() {
    // `-` cannot be regrouped: MAX_DEPTH terms nest MAX_DEPTH levels.
    let value = on_small_stack(|| {
        let ctx = context_with_t(3);
        let terms = vec!["1"; MAX_DEPTH].join(" - ");
        block_on(one_value(&ctx, &format!("SELECT {terms} FROM t LIMIT 1")))
    });
    assert_eq!(value, 1 - (MAX_DEPTH as i64 - 1));
}

#[test]
fn a_deeper_chain_is_refused_with_the_limit_named_on_a_small_stack() {
    let message = on_small_stack(|| {
        let ctx = context_with_t(3);
        let terms = vec!["1"; 50_000].join(" - ");
        block_on(async {
            vigil_query::sql::logical_plan(&ctx, &format!("SELECT {terms}"))
                .await
                .expect_err("too deep")
                .to_string()
        })
    });
    assert!(
        message.contains(&format!("more than {MAX_DEPTH} levels")),
        "{message}"
    );
}

/// A sum over `t × t × t`: 8·10⁹ rows for an aggregate that never waits on its input (a sum,
/// so that no statistic answers it without running).
async fn cross_join_count(
    ctx: &SessionContext,
    interrupt: &Interrupt,
) -> datafusion::error::Result<()> {
    let frame = vigil_query::sql::sql(ctx, "SELECT sum(a.x + b.x + c.x) FROM t a, t b, t c")
        .await
        .expect("plan");
    let task = frame.task_ctx();
    let plan = interruptible(frame.create_physical_plan().await?, interrupt)?;
    let mut stream = execute_stream(plan, Arc::new(task))?;
    while let Some(batch) = stream.next().await {
        batch?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpu_bound_cross_join_ends_at_its_deadline() {
    let ctx = context_with_t(2_000);
    let started = Instant::now();
    let interrupt = Interrupt::new().with_deadline(started + Duration::from_millis(300));
    let e = cross_join_count(&ctx, &interrupt)
        .await
        .expect_err("interrupted");
    assert_eq!(Interrupted::of(&e), Some(Interrupted::Deadline), "{e}");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "ended {took:?} after starting"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpu_bound_cross_join_ends_when_its_parent_is_interrupted() {
    let ctx = context_with_t(2_000);
    let server = Interrupt::new();
    let query = server.child();
    let stopper = server.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        stopper.interrupt(Interrupted::Stopping);
    });
    let e = cross_join_count(&ctx, &query)
        .await
        .expect_err("interrupted");
    assert_eq!(Interrupted::of(&e), Some(Interrupted::Stopping), "{e}");
}

#[tokio::test]
async fn an_interruptible_plan_gives_the_same_rows() {
    let ctx = context_with_t(1_000);
    let sql = "SELECT a.x % 7 AS k, count(*) AS n FROM t a JOIN t b ON a.x = b.x + 1 GROUP BY 1 ORDER BY 1";
    let frame = vigil_query::sql::sql(&ctx, sql).await.expect("plan");
    let expected = frame.clone().collect().await.expect("run");
    let task = Arc::new(frame.task_ctx());
    let plan = interruptible(
        frame.create_physical_plan().await.expect("plan"),
        &Interrupt::new(),
    )
    .expect("wrapped");
    let got = collect(plan, task).await.expect("run");
    assert_eq!(
        arrow::util::pretty::pretty_format_batches(&got)
            .expect("fmt")
            .to_string(),
        arrow::util::pretty::pretty_format_batches(&expected)
            .expect("fmt")
            .to_string()
    );
}
