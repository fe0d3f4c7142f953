//! Runtime-dispatched SIMD builds of a CPU twin, without `-C target-cpu=native`.
//!
//! [`multiversion!`](crate::multiversion) turns one `#[inline(always)]` function, written
//! as branch-free loops over slices that the compiler vectorises, into a public function
//! that runs it compiled for AVX-512F, for AVX2, or for the target's baseline (SSE2 on
//! x86-64, NEON on aarch64), picked on every call with `is_x86_feature_detected!` (a cached
//! load and test). The shipped binary therefore runs on any x86-64 or ARM machine and uses
//! the widest vectors the machine has.
//!
//! FMA is deliberately not enabled: a fused multiply-add rounds once where the baseline
//! rounds twice, so with it the builds would give different bits. Without it every build
//! performs the same IEEE operations in the same order per element and gives the same
//! results bit for bit (the wider builds only do more elements per instruction), which the
//! models' tests compare.

/// Defines `$vis fn $name(args) -> ret` that calls `$imp(args)` compiled for AVX-512F, AVX2
/// or the baseline, picked at run time (see the [module docs](crate::engine::simd)), and
/// `$vis fn $portable(args) -> ret`, the baseline build alone (tests compare the two).
/// `$imp` must be `#[inline(always)]` so that it is compiled into each build.
///
/// ```ignore
/// neqkin::multiversion! {
///     /// Docs of the dispatched function.
///     pub fn rhs / rhs_portable (params: &[f64], y: &[f64], dy: &mut [f64]) => rhs_impl
/// }
/// ```
#[macro_export]
macro_rules! multiversion {
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident / $portable:ident ($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? => $imp:path
    ) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512($($arg: $ty),*) $(-> $ret)? {
                    $imp($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $imp($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU supports AVX-512F (checked just above).
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU supports AVX2 (checked just above).
                    return unsafe { avx2($($arg),*) };
                }
            }
            $portable($($arg),*)
        }

        /// The baseline build (SSE2 on x86-64, NEON on aarch64) of the dispatched function
        /// of the same signature; public so that tests can compare the two bit for bit.
        $vis fn $portable($($arg: $ty),*) $(-> $ret)? {
            $imp($($arg),*)
        }
    };
}
