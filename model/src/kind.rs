//! The five signal kinds vigil stores, and their names in SQL and on disk.

use std::fmt;
use std::str::FromStr;

use crate::error::ModelError;

/// A kind of signal. Every row belongs to exactly one kind; every segment holds one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SignalKind {
    Metric,
    Log,
    Span,
    Audit,
    Event,
    /// Downsampled metrics written by retention (`metric_rollups`); never ingested.
    Rollup,
}

impl SignalKind {
    /// The five ingested kinds, in their on-disk code order (what `signals` unions).
    pub const ALL: [SignalKind; 5] = [
        SignalKind::Metric,
        SignalKind::Log,
        SignalKind::Span,
        SignalKind::Audit,
        SignalKind::Event,
    ];

    /// Every kind a segment may hold: the ingested ones and [`SignalKind::Rollup`].
    pub const STORED: [SignalKind; 6] = [
        SignalKind::Metric,
        SignalKind::Log,
        SignalKind::Span,
        SignalKind::Audit,
        SignalKind::Event,
        SignalKind::Rollup,
    ];

    /// The singular name used in the `kind` column and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            SignalKind::Metric => "metric",
            SignalKind::Log => "log",
            SignalKind::Span => "span",
            SignalKind::Audit => "audit",
            SignalKind::Event => "event",
            SignalKind::Rollup => "rollup",
        }
    }

    /// The SQL table that exposes this kind.
    pub fn table_name(self) -> &'static str {
        match self {
            SignalKind::Metric => "metrics",
            SignalKind::Log => "logs",
            SignalKind::Span => "spans",
            SignalKind::Audit => "audit",
            SignalKind::Event => "events",
            SignalKind::Rollup => "metric_rollups",
        }
    }

    /// The byte that identifies the kind in WAL records and segment metadata.
    pub fn code(self) -> u8 {
        match self {
            SignalKind::Metric => 1,
            SignalKind::Log => 2,
            SignalKind::Span => 3,
            SignalKind::Audit => 4,
            SignalKind::Event => 5,
            SignalKind::Rollup => 6,
        }
    }

    pub fn from_code(code: u8) -> Option<SignalKind> {
        SignalKind::STORED.into_iter().find(|k| k.code() == code)
    }
}

impl fmt::Display for SignalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SignalKind {
    type Err = ModelError;

    /// Accepts the singular name (`metric`) and the table name (`metrics`), in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        SignalKind::ALL
            .into_iter()
            .find(|k| k.as_str() == lower || k.table_name() == lower)
            .ok_or_else(|| ModelError::UnknownKind(s.to_string()))
    }
}
