//! Work layouts of member kernels (kernels written as `rhs_member`: a model's `rhs` kernel
//! and the fused step kernels): how many threads work on one member and how many members
//! share a workgroup. Chosen once per batch by [`super::GpuContext::member_layout`] from
//! the grid size and the adapter's limits; ARCHITECTURE.md, "Work layouts", describes the
//! rules and the environment variables that override them.

use super::WG;

/// Environment variable overriding the members per workgroup
/// ([`super::GpuContext::member_layout`]); honoured only for packable kernels.
pub const MEMBERS_PER_WG_ENV: &str = "NEQKIN_MEMBERS_PER_WG";

/// The line a model's WGSL source carries when several members may share a workgroup: its
/// `rhs_member` keeps its workgroup memory to shared/member_reduce and guards every storage
/// write besides `rhs_dy` with `rhs_active()` (shared/rhs_bindings).
pub const PACKABLE_MARKER: &str = "//! layout: packable";

/// Fewest threads per member on a GPU when members are packed: one subgroup (a warp of 32
/// on NVIDIA, half an AMD wave64), so no subgroup holds two members' partial work.
pub const GPU_MIN_MEMBER_THREADS: u32 = 32;

/// Workgroup-memory bytes per thread a packed member kernel may use, in reals: the pair of
/// shared/member_reduce and the fused step loop's `fused_partial`.
const WORKGROUP_REALS_PER_THREAD: u64 = 3;

/// How one batch's member kernels map members onto workgroups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MemberLayout {
    /// Threads working on one member (`WG` in the kernels): a power of two.
    pub threads_per_member: u32,
    /// Members sharing one workgroup (`MPW`), each on its own segment of
    /// `threads_per_member` threads; the workgroup has `threads × members` threads.
    pub members_per_workgroup: u32,
    /// Workgroups working on one member (1: every member kernel runs a member inside one
    /// workgroup).
    pub workgroups_per_member: u32,
}

impl MemberLayout {
    /// One member per workgroup of `threads` threads.
    pub fn single(threads: u32) -> Self {
        MemberLayout { threads_per_member: threads, members_per_workgroup: 1, workgroups_per_member: 1 }
    }

    /// Threads per workgroup.
    pub fn workgroup_threads(&self) -> u32 {
        self.threads_per_member * self.members_per_workgroup
    }

    /// Workgroups a member kernel dispatches for `batch` members.
    pub fn workgroups(&self, batch: usize) -> u64 {
        (batch as u64).div_ceil(u64::from(self.members_per_workgroup)) * u64::from(self.workgroups_per_member)
    }
}

impl std::fmt::Display for MemberLayout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} threads/member, {} members/wg, {} wg/member",
            self.threads_per_member, self.members_per_workgroup, self.workgroups_per_member
        )
    }
}

/// What [`choose`] needs to know about the adapter.
#[derive(Clone, Copy, Debug)]
pub struct AdapterShape {
    /// A CPU adapter (llvmpipe/lavapipe).
    pub cpu: bool,
    /// Threads one (1-D) workgroup may have: `max_compute_invocations_per_workgroup` and
    /// `max_compute_workgroup_size_x`, the smaller.
    pub max_invocations: u32,
    /// `max_compute_workgroup_storage_size`, bytes.
    pub max_workgroup_bytes: u32,
    /// Bytes per real of the kernels.
    pub real_bytes: u64,
}

/// What [`choose`] needs to know about the batch.
#[derive(Clone, Copy, Debug)]
pub struct MemberShape {
    /// Members in the batch.
    pub batch: usize,
    /// Reals per member in the state.
    pub state_len: usize,
    /// Items the member's threads share out in its `rhs_member` (cells, momenta): the
    /// number of threads that can have work ([`crate::engine::model::BatchProblem::member_parallel_width`]).
    pub parallel_width: usize,
    /// [`crate::engine::model::BatchProblem::member_loops_per_component`].
    pub loops_per_component: usize,
    /// Whether the model's source carries [`PACKABLE_MARKER`].
    pub packable: bool,
}

/// The layout for `member` on `adapter`; `threads_override` and `members_override` are
/// the values of `NEQKIN_MEMBER_WG` and `NEQKIN_MEMBERS_PER_WG` (ignored when invalid:
/// not a power of two / zero, or beyond the adapter's invocations per workgroup).
///
/// Threads per member: on a CPU adapter [`super::cpu_member_workgroup_size`] (lavapipe's
/// loop budget and barrier cost); on a GPU, for a packable kernel the power of two that
/// covers the parallel width, from [`GPU_MIN_MEMBER_THREADS`] to [`WG`], else [`WG`].
/// Members per workgroup: 1 on a CPU adapter (llvmpipe runs each workgroup on one core and
/// switches through its 8-lane groups at every barrier, so packing only lengthens the
/// switch chain; see docs/benchmarks.md section 16) and for kernels that are not packable;
/// on a GPU as many as fill [`WG`] threads (the preferred workgroup size of the engine's
/// kernels), at most the batch and within the adapter's invocations and workgroup memory.
pub fn choose(
    adapter: AdapterShape,
    member: MemberShape,
    threads_override: Option<u32>,
    members_override: Option<u32>,
) -> MemberLayout {
    let max_threads = adapter.max_invocations.min(WG);
    let threads = match threads_override {
        Some(t) if t.is_power_of_two() && t <= max_threads => t,
        _ if adapter.cpu => super::cpu_member_workgroup_size(member.state_len, member.loops_per_component),
        _ if member.packable => {
            (member.parallel_width.max(1).next_power_of_two().min(WG as usize) as u32).clamp(GPU_MIN_MEMBER_THREADS, WG)
        }
        _ => WG,
    };
    if !member.packable {
        return MemberLayout::single(threads);
    }
    let memory_cap = |members: u32| {
        u64::from(threads * members) * WORKGROUP_REALS_PER_THREAD * adapter.real_bytes
            <= u64::from(adapter.max_workgroup_bytes)
    };
    let fits = |members: u32| members >= 1 && threads * members <= adapter.max_invocations && memory_cap(members);
    let members = match members_override {
        Some(m) if fits(m) => m,
        _ if adapter.cpu => 1,
        _ => {
            let mut m = (WG / threads).min(member.batch.clamp(1, WG as usize) as u32).max(1);
            while m > 1 && !fits(m) {
                m /= 2;
            }
            m
        }
    };
    MemberLayout { threads_per_member: threads, members_per_workgroup: members, workgroups_per_member: 1 }
}

/// Whether a model's kernel source may run with several members per workgroup.
pub fn packable(model_source: &str) -> bool {
    model_source.lines().any(|l| l.trim() == PACKABLE_MARKER)
}

/// The entry point `rhs_packed` appended to a packable model's source for the op-by-op
/// `rhs` dispatch when members share workgroups: segment `s` of workgroup `g` evaluates
/// member `g × MPW + s`; the spare segments of the last workgroup evaluate a copy of the
/// last member with writes off (`rhs_active()` false), so every invocation reaches the
/// model's barriers. Like photoexcited's own `rhs`, a member whose loops lavapipe's budget
/// cut gets a NaN derivative.
pub const PACKED_RHS_ENTRY: &str = r#"
// ---- packed entry point, appended by src/engine/gpu/layout.rs ----
@compute @workgroup_size(WG * MPW)
fn rhs_packed(
    @builtin(workgroup_id) wg_id: vec3<u32>,
    @builtin(num_workgroups) num_wg: vec3<u32>,
    @builtin(local_invocation_index) lid_all: u32,
) {
    let group = member_index(wg_id, num_wg);
    if (group * MPW >= dims.batch) {
        return;
    }
    rhs_segment = lid_all / WG;
    let lid = lid_all % WG;
    let slot = group * MPW + rhs_segment;
    rhs_writes = slot < dims.batch;
    let member = min(slot, dims.batch - 1u);
    rhs_member(member, lid, scalars[dims.t_offset + member]);
    if (workgroup_loops_cut()) {
        let yb = member * dims.state_len;
        for (var i: u32 = lid; i < dims.state_len; i = i + WG) {
            rhs_dy(yb + i, runtime_nan());
        }
    }
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu() -> AdapterShape {
        AdapterShape { cpu: false, max_invocations: 1024, max_workgroup_bytes: 32768, real_bytes: 8 }
    }

    fn shape(batch: usize, state_len: usize, width: usize) -> MemberShape {
        MemberShape { batch, state_len, parallel_width: width, loops_per_component: 1, packable: true }
    }

    #[test]
    fn gpu_packs_small_members_into_full_workgroups() {
        // Interband at 40 momenta: 64 threads per member, 4 members per workgroup.
        let l = choose(gpu(), shape(1024, 240, 40), None, None);
        assert_eq!((l.threads_per_member, l.members_per_workgroup), (64, 4));
        assert_eq!(l.workgroups(1023), 256);
        // Large grids keep one member per 256-thread workgroup.
        let l = choose(gpu(), shape(64, 2051, 2048), None, None);
        assert_eq!(l, MemberLayout::single(WG));
        // Never more members per workgroup than the batch has.
        assert_eq!(choose(gpu(), shape(2, 24, 10), None, None).members_per_workgroup, 2);
        // Not packable: one member per 256-thread workgroup whatever the grid.
        let mut s = shape(1024, 240, 40);
        s.packable = false;
        assert_eq!(choose(gpu(), s, None, Some(4)), MemberLayout::single(WG));
    }

    #[test]
    fn limits_and_overrides_bound_the_layout() {
        // f64 workgroup memory of 4 KiB: 3 reals × 8 bytes × threads ≤ 4096 → 128 threads.
        let small = AdapterShape { max_workgroup_bytes: 4096, ..gpu() };
        let l = choose(small, shape(1024, 100, 20), None, None);
        assert_eq!((l.threads_per_member, l.members_per_workgroup), (32, 4));
        // Overrides within the limits are taken, others ignored.
        let l = choose(gpu(), shape(1024, 240, 40), Some(16), Some(8));
        assert_eq!((l.threads_per_member, l.members_per_workgroup), (16, 8));
        let l = choose(gpu(), shape(1024, 240, 40), Some(24), Some(1000));
        assert_eq!((l.threads_per_member, l.members_per_workgroup), (64, 4));
        // CPU adapters keep one member per workgroup unless told otherwise.
        let cpu = AdapterShape { cpu: true, ..gpu() };
        assert_eq!(choose(cpu, shape(64, 240, 40), None, None).members_per_workgroup, 1);
        assert_eq!(choose(cpu, shape(64, 240, 40), None, Some(3)).members_per_workgroup, 3);
    }
}
