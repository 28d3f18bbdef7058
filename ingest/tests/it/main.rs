//! Tests of the decoders on their own.
#![allow(clippy::unwrap_used)]

mod fuzz_replay;
