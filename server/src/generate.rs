//! `vigil generate`: writes a seeded synthetic cluster's telemetry to files, one per kind,
//! for `vigil import`, for trying vigil out and for feeding other databases the same data.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressStyle};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use vigil::SignalKind;
use vigil_synth::{Cluster, ClusterSpec};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GenerateFormat {
    Parquet,
    Ndjson,
}

/// Writes `<out>/<table>.<ext>` for every kind; returns the files and their row counts.
pub fn generate(
    out: &Path,
    pods: usize,
    hours: f64,
    seed: u64,
    format: GenerateFormat,
) -> Result<Vec<(SignalKind, PathBuf, usize)>> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let spec = ClusterSpec {
        pods,
        duration: Duration::from_secs_f64(hours * 3600.0),
        seed,
        ..ClusterSpec::default()
    };
    let cluster = Cluster::new(spec);
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} generating {msg}: {pos} rows")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let mut written = Vec::new();
    for kind in SignalKind::ALL {
        bar.set_message(kind.table_name());
        let ext = match format {
            GenerateFormat::Parquet => "parquet",
            GenerateFormat::Ndjson => "ndjson",
        };
        let path = out.join(format!("{}.{ext}", kind.table_name()));
        let file = BufWriter::new(
            File::create(&path).with_context(|| format!("creating {}", path.display()))?,
        );
        let schema = vigil::schema::kind_schema(kind);
        let mut rows = 0;
        match format {
            GenerateFormat::Parquet => {
                let props = WriterProperties::builder()
                    .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
                    .build();
                let mut writer = ArrowWriter::try_new(file, schema, Some(props))?;
                for batch in cluster.batches(kind) {
                    rows += batch.num_rows();
                    bar.inc(batch.num_rows() as u64);
                    writer.write(&batch)?;
                }
                writer.close()?;
            }
            GenerateFormat::Ndjson => {
                let mut writer = arrow::json::LineDelimitedWriter::new(file);
                for batch in cluster.batches(kind) {
                    rows += batch.num_rows();
                    bar.inc(batch.num_rows() as u64);
                    writer.write(&batch)?;
                }
                writer.finish()?;
            }
        }
        written.push((kind, path, rows));
    }
    bar.finish_and_clear();
    Ok(written)
}
