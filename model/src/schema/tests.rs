use super::*;

/// `docs/schema.md` is generated from the column specs; this keeps it true.
/// `VIGIL_BLESS=1 cargo test -p vigil-model schema_doc` rewrites it.
#[test]
fn schema_doc_is_up_to_date() {
    // The directory cargo runs the test in, not the one it was compiled in: a build cache
    // shared between checkouts may hold a binary compiled elsewhere.
    let manifest_dir =
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    let path = std::path::Path::new(&manifest_dir).join("../docs/schema.md");
    let expected = schema_markdown();
    if std::env::var_os("VIGIL_BLESS").is_some() {
        std::fs::write(&path, &expected).unwrap();
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "docs/schema.md is stale: run VIGIL_BLESS=1 cargo test -p vigil-model schema_doc"
    );
}

#[test]
fn shared_column_names_have_one_type() {
    let mut seen: std::collections::BTreeMap<&str, ColumnType> = Default::default();
    for kind in SignalKind::ALL {
        for c in columns(kind) {
            if let Some(t) = seen.insert(c.name, c.ty) {
                assert_eq!(t, c.ty, "column `{}` has two types", c.name);
            }
        }
    }
    assert!(
        !seen.contains_key(KIND_COLUMN),
        "`kind` is reserved for signals"
    );
}

#[test]
fn signals_has_every_column_once_and_kind() {
    let wide = signals_schema();
    for kind in SignalKind::ALL {
        for c in columns(kind) {
            assert_eq!(
                wide.fields().iter().filter(|f| f.name() == c.name).count(),
                1,
                "{}",
                c.name
            );
        }
    }
    assert!(wide.field_with_name(KIND_COLUMN).is_ok());
    assert_eq!(
        kind_schema(SignalKind::Metric).field(0).data_type(),
        &ts_type()
    );
}
