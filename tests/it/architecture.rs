//! The crate graph stays `server -> engine -> {query, storage}` with `vigil-model` under all
//! of them: query and storage never depend on each other, model and ingest on no other vigil
//! crate, and nothing on the server.

use std::process::Command;

/// `cargo tree` with `args`, offline: its output, or `None` when it fails.
fn cargo_tree(args: &[&str]) -> Option<String> {
    let out = Command::new(env!("CARGO"))
        .args(["tree", "--offline"])
        .args(args)
        .current_dir(crate::support::manifest_dir())
        .output()
        .expect("run cargo tree");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn inverse_tree(package: &str, dependency: &str) -> String {
    // `cargo tree -i X` fails when X is not in the graph at all, which is what we want.
    cargo_tree(&["--edges", "normal,build", "-p", package, "-i", dependency]).unwrap_or_default()
}

#[test]
fn query_and_storage_do_not_depend_on_each_other() {
    assert_eq!(inverse_tree("vigil-query", "vigil-storage"), "");
    assert_eq!(inverse_tree("vigil-storage", "vigil-query"), "");
    assert_eq!(
        inverse_tree("vigil-storage", "datafusion"),
        "",
        "storage must not know SQL"
    );
}

#[test]
fn the_engine_depends_on_both() {
    assert!(inverse_tree("vigil-engine", "vigil-storage").contains("vigil-engine"));
    assert!(inverse_tree("vigil-engine", "vigil-query").contains("vigil-engine"));
}

/// The workspace's own crates.
const VIGIL_CRATES: &[&str] = &[
    "vigil-model",
    "vigil-storage",
    "vigil-query",
    "vigil-engine",
    "vigil-ingest",
    "vigil-synth",
    "vigil-server",
    "vigil-tests",
    "vigil-benches",
];

/// The vigil crates `package` depends on (normal and build edges), itself excluded.
fn vigil_dependencies(package: &str) -> Vec<String> {
    let tree = cargo_tree(&[
        "--edges",
        "normal,build",
        "--prefix",
        "none",
        "--format",
        "{p}",
        "-p",
        package,
    ])
    .expect("cargo tree");
    let mut found: Vec<String> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != package && VIGIL_CRATES.contains(name))
        .map(str::to_string)
        .collect();
    found.sort();
    found.dedup();
    found
}

#[test]
fn model_and_ingest_depend_on_no_other_vigil_crate_but_the_model() {
    assert_eq!(vigil_dependencies("vigil-model"), Vec::<String>::new());
    assert_eq!(vigil_dependencies("vigil-ingest"), ["vigil-model"]);
}

#[test]
fn nothing_depends_on_the_server() {
    for package in VIGIL_CRATES.iter().filter(|p| **p != "vigil-server") {
        assert!(
            !vigil_dependencies(package).contains(&"vigil-server".to_string()),
            "{package} depends on vigil-server"
        );
    }
}

/// Each package in `cargo tree`'s output with the features it is built with.
fn feature_sets(args: &[&str]) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut all = vec!["--prefix", "none", "--format", "{p}|{f}"];
    all.extend(args);
    let tree = cargo_tree(&all).expect("cargo tree");
    let mut sets: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for line in tree.lines() {
        let line = line.trim_end_matches(" (*)");
        if let Some((package, features)) = line.split_once('|') {
            let entry = sets.entry(package.to_string()).or_default();
            if !entry.iter().any(|f| f == features) {
                entry.push(features.to_string());
            }
        }
    }
    sets
}

/// The dependencies a build of `args` compiles with other features than the test build of
/// the whole workspace, one line each.
fn features_unlike_the_workspace(args: &[&str]) -> Vec<String> {
    let tests = feature_sets(&["--workspace"]);
    let mut differ = Vec::new();
    for (package, features) in feature_sets(args) {
        let built_for_tests = tests.get(&package).cloned().unwrap_or_default();
        for set in features {
            if !built_for_tests.contains(&set) {
                differ.push(format!(
                    "{args:?}: {package} [{set}], the workspace's tests {built_for_tests:?}"
                ));
            }
        }
    }
    differ
}

/// The README's first command builds the `vigil` binary, its second the whole workspace with
/// its tests, and developers test one crate at a time: each build reuses the others'
/// dependencies only if it compiles them with the same features (otherwise DataFusion
/// compiles again). The workspace-hack crate makes it so; this checks it stays so.
#[test]
fn every_build_compiles_each_dependency_with_one_feature_set() {
    let mut differ =
        features_unlike_the_workspace(&["-p", "vigil-server", "--edges", "normal,build"]);
    for package in VIGIL_CRATES
        .iter()
        .filter(|p| !["vigil-model", "vigil-ingest"].contains(p))
    {
        differ.extend(features_unlike_the_workspace(&["-p", package]));
    }
    assert!(
        differ.is_empty(),
        "run `cargo hakari generate && cargo hakari manage-deps` (.config/hakari.toml):\n{}",
        differ.join("\n")
    );
}
