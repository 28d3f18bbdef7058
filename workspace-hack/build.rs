//! Empty: a build script makes cargo honour the crate's build-dependencies, which unify the
//! features of what build scripts and proc macros use.
fn main() {}
