//! Random tables and a SQL context with vigil's extensions.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vigil_query::{SessionOptions, new_context};

/// One row of a random table: key, time, id.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub key: Option<i64>,
    pub time: Option<i64>,
    pub id: i64,
}

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// `n` rows with keys in 0..keys (sometimes NULL) and times in 0..span (sometimes NULL).
pub fn random_rows(rng: &mut StdRng, n: usize, keys: i64, span: i64, first_id: i64) -> Vec<Row> {
    (0..n)
        .map(|i| Row {
            key: (!rng.random_bool(0.05)).then(|| rng.random_range(0..keys)),
            time: (!rng.random_bool(0.05)).then(|| rng.random_range(0..span)),
            id: first_id + i as i64,
        })
        .collect()
}

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("g", DataType::Utf8, true),
        Field::new("t", DataType::Int64, true),
        Field::new("id", DataType::Int64, false),
    ]))
}

fn batch(rows: &[Row]) -> RecordBatch {
    let k: Int64Array = rows.iter().map(|r| r.key).collect();
    // A second key derived from the first, so multi-key joins agree with single-key ones.
    let g: StringArray = rows
        .iter()
        .map(|r| r.key.map(|k| format!("g{}", k % 2)))
        .collect();
    let t: Int64Array = rows.iter().map(|r| r.time).collect();
    let id: Int64Array = rows.iter().map(|r| Some(r.id)).collect();
    RecordBatch::try_new(
        schema(),
        vec![Arc::new(k), Arc::new(g), Arc::new(t), Arc::new(id)],
    )
    .expect("valid batch")
}

/// Registers `rows` as table `name`, split over several partitions and batches, unsorted.
pub fn register(ctx: &SessionContext, name: &str, rows: &[Row], rng: &mut StdRng) {
    let parts = rng.random_range(1..4);
    let mut partitions: Vec<Vec<RecordBatch>> = vec![vec![]; parts];
    for (i, chunk) in rows.chunks(7).enumerate() {
        partitions[i % parts].push(batch(chunk));
    }
    let table = MemTable::try_new(schema(), partitions).expect("valid table");
    ctx.register_table(name, Arc::new(table))
        .expect("registered");
}

pub fn context() -> SessionContext {
    new_context(&SessionOptions {
        target_partitions: 2,
        batch_size: 5,
        ..SessionOptions::default()
    })
    .expect("context")
}

/// Runs `sql` and returns its rows as (i64 option) tuples of the given columns.
pub async fn rows(ctx: &SessionContext, sql: &str) -> Vec<Vec<Option<i64>>> {
    let frame = vigil_query::sql::sql(ctx, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let batches = frame
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut out = vec![];
    for b in batches {
        let cols: Vec<&Int64Array> = b
            .columns()
            .iter()
            .map(|c| {
                c.as_any()
                    .downcast_ref::<Int64Array>()
                    .expect("int64 column")
            })
            .collect();
        for r in 0..b.num_rows() {
            out.push(
                cols.iter()
                    .map(|c| (!c.is_null(r)).then(|| c.value(r)))
                    .collect(),
            );
        }
    }
    out.sort();
    out
}

use arrow::array::Array;
