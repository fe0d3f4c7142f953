//! The policy every GPU test (and bench) follows when it asks for a device.
//!
//! A fresh machine with Rust but no GPU and no Vulkan driver must pass the README's test
//! command, so a GPU test without an adapter is *skipped, loudly*: it writes one line to
//! the real stderr (past the test harness's capture, so it shows in `cargo test` output)
//! naming the test and why. CI must not skip: `.ci/run` installs Mesa's lavapipe and sets
//! [`REQUIRE_ENV`]` = 1`, which turns a missing adapter into a failure. [`SKIP_ENV`]` = 1`
//! skips explicitly (and is refused when [`REQUIRE_ENV`] is set too).

use std::io::Write;
use std::sync::Arc;

use crate::engine::gpu::GpuContext;
use crate::NeqkinError;

/// Set to `1` to make a missing GPU adapter fail every GPU test (CI sets it).
pub const REQUIRE_ENV: &str = "NEQKIN_REQUIRE_GPU";
/// Set to `1` to skip the GPU tests explicitly.
pub const SKIP_ENV: &str = "NEQKIN_SKIP_GPU";

fn flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1")
}

/// True when GPU tests must run ([`REQUIRE_ENV`] = 1).
pub fn gpu_required() -> bool {
    flag(REQUIRE_ENV)
}

/// Writes a skip notice on the process's stderr, bypassing libtest's output capture.
pub fn report_skip(test: &str, why: &str) {
    let _ = writeln!(
        std::io::stderr().lock(),
        "neqkin: GPU test `{test}` SKIPPED: {why}. Install Mesa's lavapipe \
         (apt-get install mesa-vulkan-drivers) to run it; {REQUIRE_ENV}=1 makes this a failure (CI sets it)."
    );
}

/// Whether a GPU test may run: true when an adapter opens, false (after a skip notice) when
/// the test is to be skipped; panics when it may not be skipped ([`REQUIRE_ENV`] = 1) but
/// cannot run. For tests that drive the `neqkin` binary with `--backend gpu`.
pub fn gpu_available(test: &str) -> bool {
    gpu_context(test).is_some()
}

/// The device for a GPU test, or `None` (after a skip notice) when the test is skipped.
///
/// # Panics
/// When [`REQUIRE_ENV`] = 1 and no adapter can be opened, or when opening an adapter that
/// exists fails (that is a real error, never a skip).
pub fn gpu_context(test: &str) -> Option<Arc<GpuContext>> {
    let required = gpu_required();
    if flag(SKIP_ENV) {
        assert!(!required, "{SKIP_ENV}=1 and {REQUIRE_ENV}=1 contradict each other (test `{test}`)");
        report_skip(test, &format!("{SKIP_ENV}=1"));
        return None;
    }
    match GpuContext::new() {
        Ok(ctx) => Some(Arc::new(ctx)),
        Err(NeqkinError::NoAdapter(why)) if !required => {
            report_skip(test, &format!("no GPU adapter ({why})"));
            None
        }
        Err(NeqkinError::NoAdapter(why)) => {
            panic!("{REQUIRE_ENV}=1 but no GPU adapter for test `{test}`: {why}")
        }
        Err(e) => panic!("GPU test `{test}`: opening the adapter failed: {e}"),
    }
}
