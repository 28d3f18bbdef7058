//! Integration tests of vigil-query on plain DataFusion tables: each temporal operator
//! against a naive reference on random inputs, MATCH_RECOGNIZE reduced against itself
//! unreduced, its measures against a naive recomputation, and gap filling end to end.

mod asof;
mod band;
mod gapfill;
mod match_recognize;
mod measures;
mod support;
