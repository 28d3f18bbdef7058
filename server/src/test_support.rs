//! Set-up shared by the server's unit tests.

use std::path::Path;

use vigil::{Db, DbOptions, StoreOptions};

/// A database in `dir` with no background work, so tests see exactly what they wrote.
pub fn quiet_db(dir: &Path) -> Db {
    let options = DbOptions {
        store: StoreOptions {
            background: false,
            ..StoreOptions::default()
        },
        ..DbOptions::default()
    };
    Db::open_with(dir, options).expect("open")
}
