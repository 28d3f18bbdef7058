//! Integration tests of vigil-query on plain DataFusion tables: each temporal operator
//! against a naive reference on random inputs, MATCH_RECOGNIZE reduced against itself
//! unreduced, its measures against a naive recomputation, gap filling end to end, and the limits
//! that keep a statement from taking a process down.

mod asof;
mod band;
mod gapfill;
mod limits;
mod match_recognize;
mod measures;
mod support;
