//! Integration tests of vigil-query on plain DataFusion tables: each temporal operator
//! against a naive reference on random inputs.

mod asof;
mod band;
mod support;
