//! Integration tests of vigil-query on plain DataFusion tables: each temporal operator
//! against a naive reference on random inputs, and MATCH_RECOGNIZE reduced against itself
//! unreduced.

mod asof;
mod band;
mod match_recognize;
mod support;
