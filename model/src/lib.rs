//! `vigil-model`: the vocabulary every vigil crate shares.
//!
//! - [`SignalKind`]: the five ingested kinds of signal and the stored rollups;
//! - [`schema`]: the data model as column specs (common columns, each kind's own, which are
//!   required and which are indexed) and the Arrow schemas built from them;
//! - [`series`]: the columns that name a metric series;
//! - [`PodObservation`]: what one record said about one pod at one moment;
//! - [`BatchBuilder`]: a row-at-a-time builder of one kind's batch, by column name;
//! - [`time::nanos`]: durations on the nanosecond scale of `ts`.
//!
//! This crate is a leaf (arrow and serde only): the store, the decoders, the generators and
//! the engine all speak it, and none of them has to convert another's copy.

pub mod batch;
pub mod error;
pub mod kind;
pub mod pod;
pub mod schema;
pub mod series;
pub mod time;

pub use batch::BatchBuilder;
pub use error::{ModelError, Result};
pub use kind::SignalKind;
pub use pod::PodObservation;
