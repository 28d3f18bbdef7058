//! Named crash points for the crash-consistency tests.
//!
//! `crash_point!("name")` aborts the process when a test configured that point to `return`
//! (`FAILPOINTS=name=return` read by `fail::FailScenario::setup`, or `fail::cfg`); `sleep`
//! and the other actions of the `fail` crate work too. Configured by nobody, a point costs one
//! registry lookup. Crash points exist in debug builds only (the tests'); release builds
//! compile them to nothing. Being no cargo feature, they give every debug build of the
//! workspace one feature set. Aborting, not panicking, is the point: it is the closest a test
//! gets to `kill -9` at an exact line.

/// Aborts here when a test configured the named point to `return`.
macro_rules! crash_point {
    ($name:expr) => {
        #[cfg(debug_assertions)]
        if fail::eval($name, |_| ()).is_some() {
            $crate::failpoints::crash();
        }
    };
}

pub(crate) use crash_point;

/// Ends the process at once, without unwinding or running destructors.
#[cfg_attr(not(debug_assertions), allow(dead_code))]
pub fn crash() -> ! {
    std::process::abort()
}
