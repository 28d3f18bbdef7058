//! The crate graph stays `server -> engine -> {query, storage}`: query and storage never
//! depend on each other.

use std::process::Command;

fn inverse_tree(package: &str, dependency: &str) -> String {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "--edges",
            "normal,build",
            "-p",
            package,
            "-i",
            dependency,
        ])
        .current_dir(crate::support::manifest_dir())
        .output()
        .expect("run cargo tree");
    // `cargo tree -i X` fails when X is not in the graph at all, which is what we want.
    if out.status.success() {
        String::from_utf8_lossy(&out.stdout).into_owned()
    } else {
        String::new()
    }
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
