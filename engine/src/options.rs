//! Options of [`crate::Db::open_with`].

use vigil_query::SessionOptions;
use vigil_storage::StoreOptions;

/// How a [`crate::Db`] stores data and runs SQL.
#[derive(Debug, Clone, Default)]
pub struct DbOptions {
    pub store: StoreOptions,
    pub session: SessionOptions,
}
