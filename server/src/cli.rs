//! Command-line arguments and dispatch.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use vigil::{Db, DbOptions, Durability, SignalKind, StoreOptions};

use crate::demo::{DemoOptions, run_demo};
use crate::generate::{GenerateFormat, generate};
use crate::import::{FileFormat, import_files};
use crate::output::{OutputFormat, print_batches};
use crate::serve::config::Config;
use crate::serve::serve;

/// vigil: an embedded time-series and event-correlation database for Kubernetes security.
#[derive(Debug, Parser)]
#[command(name = "vigil", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DurabilityArg {
    /// fsync before acknowledging (group commit across writers)
    Sync,
    /// acknowledge once handed to the OS: survives kill -9, not power loss
    Buffered,
}

impl From<DurabilityArg> for Durability {
    fn from(d: DurabilityArg) -> Self {
        match d {
            DurabilityArg::Sync => Durability::Sync,
            DurabilityArg::Buffered => Durability::Buffered,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Import Parquet, CSV or NDJSON files of one signal kind; each file is all or nothing.
    Import {
        /// The store directory (created if missing).
        #[arg(long, env = "VIGIL_DATA_DIR", default_value = ".vigil")]
        data_dir: PathBuf,
        /// Signal kind of every row: metric, log, span, audit or event.
        #[arg(long)]
        kind: String,
        /// File format; `auto` goes by the extension (.parquet, .csv, .ndjson/.jsonl/.json).
        #[arg(long, value_enum, default_value_t = FileFormat::Auto)]
        format: FileFormat,
        #[arg(long, value_enum, default_value_t = DurabilityArg::Sync)]
        durability: DurabilityArg,
        /// Files to import.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run one SQL statement and print its result.
    Sql {
        #[arg(long, env = "VIGIL_DATA_DIR", default_value = ".vigil")]
        data_dir: PathBuf,
        /// How to print the result.
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
        /// The statement, e.g. "SELECT count(*) FROM metrics"; `-` reads it from standard
        /// input.
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        query: Option<String>,
        /// Read the statement from this file (`-`: standard input), for statements longer
        /// than a command line may be.
        #[arg(long, short = 'f', value_name = "PATH")]
        file: Option<PathBuf>,
    },
    /// The main job: generate a synthetic cluster with the seed attacks and their decoys,
    /// store it, run the detection queries and compare what they find with the truth.
    Demo {
        /// Where to build the demo store (an earlier demo there is replaced).
        #[arg(long, env = "VIGIL_DEMO_DIR", default_value = ".vigil/demo")]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 2000)]
        pods: usize,
        /// Hours of telemetry, from 2024-05-01T00:00:00Z.
        #[arg(long, default_value_t = 3.0)]
        hours: f64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Run the server: OTLP over gRPC and HTTP, the Kubernetes audit webhook, health and
    /// metrics, in front of the store (see docs/configuration.md).
    Serve {
        /// The TOML config file; without it every setting has its default.
        #[arg(long, env = "VIGIL_CONFIG")]
        config: Option<PathBuf>,
        /// The store directory (overrides `data_dir` of the file).
        #[arg(long, env = "VIGIL_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// OTLP/gRPC address (overrides `listen.grpc`; default 127.0.0.1:4317).
        #[arg(long)]
        grpc_addr: Option<std::net::SocketAddr>,
        /// OTLP/HTTP, audit webhook, health and metrics address (overrides `listen.http`;
        /// default 127.0.0.1:4318).
        #[arg(long)]
        http_addr: Option<std::net::SocketAddr>,
    },
    /// Make a new bearer token: prints the secret (give it to the client) and the
    /// `[[auth.tokens]]` entry for the config file (which holds only its SHA-256).
    Token {
        /// The token's name, shown in logs and errors.
        #[arg(long)]
        name: String,
        /// What it may do: ingest, query, admin (repeat or separate with commas).
        #[arg(long = "scope", value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// Restrict its queries to these namespaces (repeat or separate with commas).
        #[arg(long = "namespace", value_delimiter = ',')]
        namespaces: Vec<String>,
        /// An RFC 3339 instant after which the token is refused.
        #[arg(long)]
        expires: Option<String>,
    },
    /// Run one retention pass now on a stopped store, with the rules of a config file;
    /// prints what it removes (with --dry-run, what it would remove, changing nothing).
    Retention {
        /// The TOML config file whose [retention] rules apply.
        #[arg(long, env = "VIGIL_CONFIG")]
        config: PathBuf,
        /// The store directory (overrides `data_dir` of the file).
        #[arg(long, env = "VIGIL_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Only show what the rules would remove.
        #[arg(long)]
        dry_run: bool,
    },
    /// Legal holds: rows of a pod in a time range that retention never removes.
    Hold {
        #[command(subcommand)]
        action: HoldAction,
    },
    /// Write a seeded synthetic cluster's telemetry to files, one per kind, for `vigil import`.
    Generate {
        /// Directory for `metrics.parquet`, `logs.parquet`, ...
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 200)]
        pods: usize,
        /// Hours of telemetry, from 2024-05-01T00:00:00Z.
        #[arg(long, default_value_t = 1.0)]
        hours: f64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, value_enum, default_value_t = GenerateFormat::Parquet)]
        format: GenerateFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum HoldAction {
    /// Keep the rows of one pod in a time range (prints the hold's id).
    Place {
        #[arg(long, env = "VIGIL_DATA_DIR", default_value = ".vigil")]
        data_dir: PathBuf,
        /// Only the pod of this namespace (else the pod of that name in any namespace).
        #[arg(long)]
        namespace: Option<String>,
        #[arg(long)]
        pod: String,
        /// First instant held, RFC 3339.
        #[arg(long)]
        from: String,
        /// Last instant held, RFC 3339.
        #[arg(long)]
        to: String,
        /// Why (shown by SHOW HOLDS).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// End a hold.
    Release {
        #[arg(long, env = "VIGIL_DATA_DIR", default_value = ".vigil")]
        data_dir: PathBuf,
        id: u64,
    },
}

/// Logs go to stderr, filtered by `VIGIL_LOG` if set, else by `default`.
fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Serve {
            config,
            data_dir,
            grpc_addr,
            http_addr,
        } => {
            let mut config = match config {
                Some(path) => Config::load(&path)?,
                None => Config::default(),
            };
            if let Some(dir) = data_dir {
                config.data_dir = dir;
            }
            if let Some(addr) = grpc_addr {
                config.listen.grpc = addr;
            }
            if let Some(addr) = http_addr {
                config.listen.http = addr;
            }
            config.check()?;
            init_logging(&config.log.level);
            let runtime = query_runtime()?;
            runtime.block_on(serve(config))?;
            Ok(ExitCode::SUCCESS)
        }
        command => {
            init_logging("warn");
            run_tool(command)
        }
    }
}

/// Every command but `serve`.
fn run_tool(command: Command) -> Result<ExitCode> {
    match command {
        // `run` starts the server itself, with its own logging.
        Command::Serve { .. } => Ok(ExitCode::FAILURE),
        Command::Token {
            name,
            scopes,
            namespaces,
            expires,
        } => {
            let secret = crate::serve::auth::new_secret();
            let mut entry = format!(
                "[[auth.tokens]]\nname = {}\nsha256 = \"{}\"\nscopes = {}\n",
                toml_string(&name),
                crate::serve::auth::hash_secret(&secret),
                toml_list(&scopes)
            );
            if !namespaces.is_empty() {
                entry.push_str(&format!("namespaces = {}\n", toml_list(&namespaces)));
            }
            if let Some(expires) = expires {
                entry.push_str(&format!("expires = {}\n", toml_string(&expires)));
            }
            // The entry must load: a bad scope or date is reported now, not at start-up.
            crate::serve::config::Config::parse(&entry)?;
            println!("# secret for {name} (shown once; send as `authorization: Bearer <secret>`):");
            println!("# {secret}");
            print!("{entry}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Retention {
            config,
            data_dir,
            dry_run,
        } => {
            let config = Config::load(&config)?;
            let data_dir = data_dir.unwrap_or(config.data_dir.clone());
            let retention = config.retention.options()?;
            let rules = retention.policy.fingerprint();
            let db = Db::open_with(
                &data_dir,
                DbOptions {
                    store: StoreOptions {
                        background: false,
                        retention,
                        ..StoreOptions::default()
                    },
                    ..DbOptions::default()
                },
            )
            .with_context(|| format!("opening the store in {}", data_dir.display()))?;
            println!(
                "rules:\n  {}",
                if rules.is_empty() {
                    "(none: everything is kept)".into()
                } else {
                    rules.replace('\n', "\n  ")
                }
            );
            let report = if dry_run {
                db.retention_dry_run()?
            } else {
                db.enforce_retention()?
            };
            println!("{report}");
            db.close()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Hold { action } => {
            match action {
                HoldAction::Place {
                    data_dir,
                    namespace,
                    pod,
                    from,
                    to,
                    reason,
                } => {
                    let instant = |flag: &str, text: &str| -> Result<i64> {
                        vigil::time::parse_rfc3339(text)
                            .map_err(|e| anyhow::anyhow!("--{flag} {e}"))
                    };
                    let request = vigil::HoldRequest {
                        namespace,
                        pod,
                        from_ns: instant("from", &from)?,
                        to_ns: instant("to", &to)?,
                        reason,
                    };
                    let db = open_existing(&data_dir, "vigil hold place")?;
                    let hold = db.place_hold(request)?;
                    println!("hold {} placed", hold.id);
                    db.close()?;
                }
                HoldAction::Release { data_dir, id } => {
                    let db = open_existing(&data_dir, "vigil hold release")?;
                    let released = db.release_hold(id)?;
                    db.close()?;
                    if !released {
                        eprintln!("error: no hold has id {id}");
                        return Ok(ExitCode::FAILURE);
                    }
                    println!("hold {id} released");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo {
            data_dir,
            pods,
            hours,
            seed,
        } => {
            let good = run_demo(&data_dir, &DemoOptions { pods, hours, seed })?;
            Ok(if good {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Generate {
            out,
            pods,
            hours,
            seed,
            format,
        } => {
            for (kind, path, rows) in generate(&out, pods, hours, seed, format)? {
                eprintln!("wrote {rows:>10} {kind} rows to {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Import {
            data_dir,
            kind,
            format,
            durability,
            files,
        } => {
            let kind: SignalKind = kind.parse()?;
            let db = open(&data_dir, durability.into())?;
            let report = import_files(&db, kind, format, &files);
            db.flush().context("flushing imported rows to segments")?;
            db.close()?;
            for failure in &report.failures {
                eprintln!("error: {failure}");
            }
            eprintln!(
                "imported {} rows of kind {kind} from {} file(s) into {}{}",
                report.rows,
                report.files_ok,
                data_dir.display(),
                if report.failures.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; {} file(s) rejected, nothing of them was stored",
                        report.failures.len()
                    )
                }
            );
            Ok(if report.failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Sql {
            data_dir,
            format,
            query,
            file,
        } => {
            let query = statement_text(query, file)?;
            let db = open_existing(&data_dir, "vigil sql")?;
            let runtime = query_runtime()?;
            let result = runtime.block_on(async {
                let stream = db.sql(&query).await?;
                let schema = stream.schema();
                let mut batches: Vec<arrow::array::RecordBatch> =
                    futures::TryStreamExt::try_collect(stream)
                        .await
                        .map_err(vigil::EngineError::from)?;
                if batches.is_empty() {
                    batches.push(arrow::array::RecordBatch::new_empty(schema));
                }
                Ok::<_, vigil::EngineError>(batches)
            });
            let batches = match result {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            print_batches(&batches, format, &mut std::io::stdout().lock())?;
            db.close()?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn open(dir: &std::path::Path, durability: Durability) -> Result<Db> {
    let options = DbOptions {
        store: StoreOptions {
            durability,
            ..StoreOptions::default()
        },
        ..DbOptions::default()
    };
    Db::open_with(dir, options).with_context(|| format!("opening the store in {}", dir.display()))
}

/// Opens the store in `dir` for a command that reads or changes an existing one: a
/// directory without a store is an error, never a new empty store.
fn open_existing(dir: &std::path::Path, command: &str) -> Result<Db> {
    if !Db::exists(dir) {
        anyhow::bail!(
            "no vigil store in {}: {command} works on an existing store (`vigil import` or \
             `vigil serve` create one)",
            dir.display()
        );
    }
    open(dir, Durability::Sync)
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn toml_list(items: &[String]) -> String {
    let parts: Vec<String> = items.iter().map(|s| toml_string(s)).collect();
    format!("[{}]", parts.join(", "))
}

/// The runtime of the command line: all cores, threads with room for deep statements
/// ([`crate::serve::queries::QUERY_THREAD_STACK_BYTES`]; `vigil serve` runs its queries on a
/// runtime of their own with the same stack).
pub(crate) fn query_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(crate::serve::queries::QUERY_THREAD_STACK_BYTES)
        .build()
}

/// The statement of `vigil sql`: the argument, or a file's text, or standard input's (`-`).
fn statement_text(query: Option<String>, file: Option<PathBuf>) -> Result<String> {
    let from_stdin = || -> Result<String> {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .context("reading the statement from standard input")?;
        Ok(text)
    };
    match (query, file) {
        (Some(q), _) if q == "-" => from_stdin(),
        (Some(q), _) => Ok(q),
        (None, Some(path)) if path.as_os_str() == "-" => from_stdin(),
        (None, Some(path)) => std::fs::read_to_string(&path)
            .with_context(|| format!("reading the statement from {}", path.display())),
        (None, None) => bail!("give a statement, or --file PATH"),
    }
}
