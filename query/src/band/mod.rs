//! Time-band joins: `a JOIN b ON a.k = b.k AND b.ts BETWEEN a.ts - X AND a.ts + Y`, ordinary
//! SQL that [`BandJoinRule`] plans as a [`BandJoinExec`], a sorted join over (key, time)
//! order, instead of a hash join that filters every pair of a key.

pub mod exec;
pub mod rule;

pub use exec::{BandBounds, BandJoinExec};
pub use rule::BandJoinRule;
