//! Named crash points for the crash-consistency tests.
//!
//! With the `failpoints` feature, `fail::fail_point!("name", |_| crash())` sites abort the
//! process when the test configures them (`FAILPOINTS=name=return`); without the feature they
//! compile to nothing. Aborting, not panicking, is the point: it is the closest a test gets to
//! `kill -9` at an exact line.

#[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
/// Ends the process at once, without unwinding or running destructors.
pub fn crash() -> ! {
    std::process::abort()
}
