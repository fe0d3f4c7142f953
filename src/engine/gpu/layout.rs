//! Work layouts of member kernels (kernels written as `rhs_member`: a model's `rhs` kernel
//! and the fused step kernels): how many threads work on one member, how many members
//! share a workgroup, and over how many workgroups one member is split. Chosen once per
//! batch by [`super::GpuContext::member_layout`] from the grid size and the adapter's
//! limits; ARCHITECTURE.md, "Work layouts", describes the rules and the environment
//! variables that override them.

use super::WG;

/// Environment variable overriding the members per workgroup
/// ([`super::GpuContext::member_layout`]); honoured only for packable kernels.
pub const MEMBERS_PER_WG_ENV: &str = "NEQKIN_MEMBERS_PER_WG";

/// Environment variable setting the workgroups per member
/// ([`super::GpuContext::member_layout`]); honoured only for splittable kernels.
pub const WGS_PER_MEMBER_ENV: &str = "NEQKIN_WGS_PER_MEMBER";

/// The line a model's WGSL source carries when one member may be split over several
/// workgroups: besides `rhs_member` it defines `rhs_cells(member, lid, t) -> vec2<Real>`
/// (its cells' derivatives over the invocation's share `member_thread(lid)`, strided by
/// `MEMBER_THREADS`, returning the invocation's contributions to the member's two sums; no
/// barriers) and `rhs_totals(member, t, sums)` (by one invocation: the components that
/// depend on the sums' totals; no barriers), and its `rhs_member` is `rhs_cells`, the sums
/// over the member's threads, `rhs_totals` by thread 0.
pub const SPLITTABLE_MARKER: &str = "//! layout: splittable";

/// Workgroups a dispatch should have before members are split: enough to fill a large GPU
/// (about 130 streaming multiprocessors or compute units with several resident workgroups
/// each). A batch of at least this many members fills the device one workgroup per member.
pub const SPLIT_TARGET_WORKGROUPS: u64 = 1024;

/// Fewest items (cells) a member needs before it is split: below this, a member's
/// workgroup has few items per thread and the split path's extra dispatches (and the loss
/// of the fused step kernel) cost more than the idle device does.
pub const SPLIT_MIN_WIDTH: usize = 16384;

/// Fewest items per thread of each workgroup of a split member.
pub const SPLIT_MIN_ITEMS_PER_THREAD: usize = 4;

/// Most workgroups per member (chosen or overridden).
pub const MAX_WGS_PER_MEMBER: u32 = 64;

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
    /// Whether the model's source carries [`SPLITTABLE_MARKER`].
    pub splittable: bool,
}

/// The layout for `member` on `adapter`; `threads_override`, `members_override` and
/// `groups_override` are the values of `NEQKIN_MEMBER_WG`, `NEQKIN_MEMBERS_PER_WG` and
/// `NEQKIN_WGS_PER_MEMBER` (ignored when invalid: not a power of two / zero, beyond the
/// adapter's invocations per workgroup, more than [`MAX_WGS_PER_MEMBER`], or for a kernel
/// without the marker).
///
/// Threads per member: on a CPU adapter [`super::cpu_member_workgroup_size`] (lavapipe's
/// loop budget and barrier cost); on a GPU, for a packable kernel the power of two that
/// covers the parallel width, from [`GPU_MIN_MEMBER_THREADS`] to [`WG`], else [`WG`].
/// Members per workgroup: 1 on a CPU adapter (llvmpipe runs each workgroup on one core and
/// switches through its 8-lane groups at every barrier, so packing only lengthens the
/// switch chain; see docs/benchmarks.md section 16) and for kernels that are not packable;
/// on a GPU as many as fill [`WG`] threads (the preferred workgroup size of the engine's
/// kernels), at most the batch and within the adapter's invocations and workgroup memory.
/// Workgroups per member: 1, except on a GPU for a splittable kernel whose batch leaves the
/// device short of [`SPLIT_TARGET_WORKGROUPS`] and whose members have at least
/// [`SPLIT_MIN_WIDTH`] items: then enough to reach the target, at most
/// [`MAX_WGS_PER_MEMBER`] and no more than leave [`SPLIT_MIN_ITEMS_PER_THREAD`] items per
/// thread (such a batch runs op by op: no fused step kernel spans workgroups). A split
/// member has its workgroup to itself (members per workgroup 1).
pub fn choose(
    adapter: AdapterShape,
    member: MemberShape,
    threads_override: Option<u32>,
    members_override: Option<u32>,
    groups_override: Option<u32>,
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
    if member.splittable {
        let groups = match groups_override {
            Some(g) if (1..=MAX_WGS_PER_MEMBER).contains(&g) => g,
            _ if adapter.cpu => 1,
            _ => split_groups(member, threads),
        };
        if groups > 1 {
            return MemberLayout {
                threads_per_member: threads,
                members_per_workgroup: 1,
                workgroups_per_member: groups,
            };
        }
    }
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

/// Workgroups per member on a GPU without an override (see [`choose`]).
fn split_groups(member: MemberShape, threads: u32) -> u32 {
    let batch = member.batch.max(1) as u64;
    if member.parallel_width < SPLIT_MIN_WIDTH || batch >= SPLIT_TARGET_WORKGROUPS {
        return 1;
    }
    let to_fill = SPLIT_TARGET_WORKGROUPS.div_ceil(batch);
    let by_items = (member.parallel_width / (threads as usize * SPLIT_MIN_ITEMS_PER_THREAD)).max(1) as u64;
    to_fill.min(by_items).min(u64::from(MAX_WGS_PER_MEMBER)) as u32
}

/// Whether a model's kernel source may be split over several workgroups per member.
pub fn splittable(model_source: &str) -> bool {
    model_source.lines().any(|l| l.trim() == SPLITTABLE_MARKER)
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

/// The entry points appended to a splittable model's source for the op-by-op `rhs`
/// dispatch when a member is split over `WPM` workgroups (one `Rhs` op = two dispatches):
/// `rhs_split`, one workgroup per (member, group): workgroup g of member m runs `rhs_cells`
/// on its share of the cells (threads g·WG .. (g+1)·WG of the member's WG·WPM), sums the
/// two partial sums over its threads and writes them to `rhs_partials`; then `rhs_finish`,
/// one invocation per member: the totals over the member's workgroups (in workgroup
/// order) and `rhs_totals`. Like photoexcited's own `rhs`, a workgroup whose loops
/// lavapipe's budget cut writes NaN into its cells and its partial sums.
pub const SPLIT_RHS_ENTRIES: &str = r#"
// ---- split entry points, appended by src/engine/gpu/layout.rs ----
@group(0) @binding(7) var<storage, read_write> rhs_partials: array<Real>;

var<workgroup> split_partial: array<vec2<Real>, WG>;

@compute @workgroup_size(WG)
fn rhs_split(
    @builtin(workgroup_id) wg_id: vec3<u32>,
    @builtin(num_workgroups) num_wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let flat = member_index(wg_id, num_wg);
    let member = flat / WPM;
    if (member >= dims.batch) {
        return;
    }
    rhs_group = flat % WPM;
    split_partial[lid] = rhs_cells(member, lid, scalars[dims.t_offset + member]);
    workgroupBarrier();
    for (var s: u32 = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            split_partial[lid] = split_partial[lid] + split_partial[lid + s];
        }
        workgroupBarrier();
    }
    var sums = split_partial[0];
    if (workgroup_loops_cut()) {
        let yb = member * dims.state_len;
        for (var i: u32 = member_thread(lid); i < dims.state_len; i = i + MEMBER_THREADS) {
            rhs_dy(yb + i, runtime_nan());
        }
        sums = vec2<Real>(runtime_nan(), runtime_nan());
    }
    if (lid == 0u) {
        rhs_partials[2u * flat] = sums.x;
        rhs_partials[2u * flat + 1u] = sums.y;
    }
}

@compute @workgroup_size(WG)
fn rhs_finish(
    @builtin(workgroup_id) wg_id: vec3<u32>,
    @builtin(num_workgroups) num_wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let member = member_index(wg_id, num_wg) * WG + lid;
    if (member >= dims.batch) {
        return;
    }
    var sums = vec2<Real>(0.0, 0.0);
    for (var g: u32 = 0u; g < WPM; g = g + 1u) {
        let k = 2u * (member * WPM + g);
        sums = sums + vec2<Real>(rhs_partials[k], rhs_partials[k + 1u]);
    }
    rhs_totals(member, scalars[dims.t_offset + member], sums);
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu() -> AdapterShape {
        AdapterShape { cpu: false, max_invocations: 1024, max_workgroup_bytes: 32768, real_bytes: 8 }
    }

    fn shape(batch: usize, state_len: usize, width: usize) -> MemberShape {
        MemberShape {
            batch,
            state_len,
            parallel_width: width,
            loops_per_component: 1,
            packable: true,
            splittable: false,
        }
    }

    #[test]
    fn gpu_packs_small_members_into_full_workgroups() {
        // Interband at 40 momenta: 64 threads per member, 4 members per workgroup.
        let l = choose(gpu(), shape(1024, 240, 40), None, None, None);
        assert_eq!((l.threads_per_member, l.members_per_workgroup), (64, 4));
        assert_eq!(l.workgroups(1023), 256);
        // Large grids keep one member per 256-thread workgroup.
        let l = choose(gpu(), shape(64, 2051, 2048), None, None, None);
        assert_eq!(l, MemberLayout::single(WG));
        // Never more members per workgroup than the batch has.
        assert_eq!(choose(gpu(), shape(2, 24, 10), None, None, None).members_per_workgroup, 2);
        // Not packable: one member per 256-thread workgroup whatever the grid.
        let mut s = shape(1024, 240, 40);
        s.packable = false;
        assert_eq!(choose(gpu(), s, None, Some(4), None), MemberLayout::single(WG));
    }

    #[test]
    fn limits_and_overrides_bound_the_layout() {
        // f64 workgroup memory of 4 KiB: 3 reals × 8 bytes × threads ≤ 4096 → 128 threads.
        let small = AdapterShape { max_workgroup_bytes: 4096, ..gpu() };
        let l = choose(small, shape(1024, 100, 20), None, None, None);
        assert_eq!((l.threads_per_member, l.members_per_workgroup), (32, 4));
        // Overrides within the limits are taken, others ignored.
        let l = choose(gpu(), shape(1024, 240, 40), Some(16), Some(8), None);
        assert_eq!((l.threads_per_member, l.members_per_workgroup), (16, 8));
        let l = choose(gpu(), shape(1024, 240, 40), Some(24), Some(1000), None);
        assert_eq!((l.threads_per_member, l.members_per_workgroup), (64, 4));
        // CPU adapters keep one member per workgroup unless told otherwise.
        let cpu = AdapterShape { cpu: true, ..gpu() };
        assert_eq!(choose(cpu, shape(64, 240, 40), None, None, None).members_per_workgroup, 1);
        assert_eq!(choose(cpu, shape(64, 240, 40), None, Some(3), None).members_per_workgroup, 3);
    }

    fn split_shape(batch: usize, cells: usize) -> MemberShape {
        MemberShape { splittable: true, ..shape(batch, cells + 3, cells) }
    }

    #[test]
    fn gpu_splits_large_members_of_small_batches() {
        // Photoexcited N = 65536, batch 4: one workgroup per member would be 4 workgroups;
        // 1024 / 4 = 256 per member wanted, capped at 64.
        let l = choose(gpu(), split_shape(4, 65536), None, None, None);
        assert_eq!(l, MemberLayout { threads_per_member: WG, members_per_workgroup: 1, workgroups_per_member: 64 });
        assert_eq!(l.workgroups(4), 256);
        // N = 16384, batch 64: 1024 / 64 = 16 workgroups per member, 4 cells per thread.
        assert_eq!(choose(gpu(), split_shape(64, 16384), None, None, None).workgroups_per_member, 16);
        // N = 32768, batch 8: 128 wanted, the cells allow 32 (4 per thread).
        assert_eq!(choose(gpu(), split_shape(8, 32768), None, None, None).workgroups_per_member, 32);
        // Batches that fill the device, grids below the threshold, kernels without the
        // marker and CPU adapters keep whole members.
        assert_eq!(choose(gpu(), split_shape(1024, 65536), None, None, None), MemberLayout::single(WG));
        assert_eq!(choose(gpu(), split_shape(4, 2048), None, None, None).workgroups_per_member, 1);
        let mut s = split_shape(4, 65536);
        s.splittable = false;
        assert_eq!(choose(gpu(), s, None, None, Some(4)).workgroups_per_member, 1);
        let cpu = AdapterShape { cpu: true, ..gpu() };
        assert_eq!(choose(cpu, split_shape(1, 65536), None, None, None).workgroups_per_member, 1);
        // The override is taken (also on a CPU adapter, also for small grids) and wins over
        // packing; out of range it is ignored.
        let l = choose(cpu, split_shape(2, 300), Some(16), Some(4), Some(3));
        assert_eq!(l, MemberLayout { threads_per_member: 16, members_per_workgroup: 1, workgroups_per_member: 3 });
        assert_eq!(choose(gpu(), split_shape(4, 300), None, None, Some(0)).workgroups_per_member, 1);
        assert_eq!(choose(gpu(), split_shape(4, 300), None, None, Some(65)).workgroups_per_member, 1);
        // W = 1 by override on a GPU where the rule would split.
        assert_eq!(choose(gpu(), split_shape(4, 65536), None, None, Some(1)).workgroups_per_member, 1);
    }
}
