//! Replays the fuzz corpus and every crash the fuzzers found (`fuzz/corpus/<target>`,
//! `fuzz/artifacts/<target>`) through the decoders, as the fuzz targets do: none may panic.
//! The fuzzers themselves run outside CI (`fuzz/README.md`).

use std::path::PathBuf;

use vigil_ingest::Namespaces;
use vigil_ingest::otlp::{Encoding, Signal, decode};

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../fuzz");
    let mut out = Vec::new();
    for dir in ["corpus", "artifacts"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_file() {
                let bytes = std::fs::read(&path).unwrap();
                out.push((path, bytes));
            }
        }
    }
    out
}

fn replay_otlp(target: &str, encoding: Encoding) -> usize {
    let inputs = inputs(target);
    for (path, data) in &inputs {
        let Some((first, body)) = data.split_first() else {
            continue;
        };
        let signal = [Signal::Metrics, Signal::Logs, Signal::Traces][usize::from(*first) % 3];
        let outcome = std::panic::catch_unwind(|| {
            decode(signal, encoding, body, 1, &Namespaces::Any)
                .map(|d| (d.rows(), d.error_message()))
        });
        assert!(outcome.is_ok(), "{} panics the decoder", path.display());
    }
    inputs.len()
}

#[test]
fn otlp_protobuf_corpus_and_crashes_decode_without_panic() {
    let n = replay_otlp("otlp_protobuf", Encoding::Protobuf);
    assert!(n >= 12, "the corpus is missing: {n} inputs");
}

#[test]
fn otlp_json_corpus_and_crashes_decode_without_panic() {
    let n = replay_otlp("otlp_json", Encoding::Json);
    assert!(n >= 4, "the corpus is missing: {n} inputs");
}

#[test]
fn audit_corpus_and_crashes_decode_without_panic() {
    let inputs = inputs("audit");
    assert!(inputs.len() >= 4, "the corpus is missing");
    for (path, data) in &inputs {
        let outcome = std::panic::catch_unwind(|| {
            let _ = vigil_ingest::audit::decode_webhook(data, &Namespaces::Any);
            vigil_ingest::audit::decode_lines(data).map(|d| d.rows())
        });
        assert!(outcome.is_ok(), "{} panics the decoder", path.display());
    }
}

/// The seeds are real payloads: they must decode to rows, not just not crash.
#[test]
fn the_seed_payloads_decode_to_rows() {
    for (path, data) in inputs("otlp_protobuf") {
        if !path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("seed-")
        {
            continue;
        }
        let signal = [Signal::Metrics, Signal::Logs, Signal::Traces][usize::from(data[0]) % 3];
        let decoded = decode(signal, Encoding::Protobuf, &data[1..], 1, &Namespaces::Any).unwrap();
        assert!(decoded.rows() > 0, "{}", path.display());
    }
}
