// Binding convention of every model right-hand-side kernel.
// Kept in sync with `RhsDims` in src/engine/gpu (Rust side) and with the argument order
// of `BatchProblem::rhs_member` (CPU twin): params, tables, t, y, dy, scratch.
//
// `Real` is defined by the host preprocessor as f32 or f64.
// Dispatch: one workgroup of WG threads per member; member = wg.x + wg.y * num_wg.x
// (2-D when the batch exceeds the per-dimension workgroup limit).

struct RhsDims {
    batch: u32,
    state_len: u32,
    params_len: u32,
    table_len: u32,
    table_stride: u32,
    scratch_len: u32,
    t_offset: u32,   // member m's time is scalars[t_offset + m]
    _pad: u32,
}

@group(0) @binding(0) var<uniform> dims: RhsDims;
@group(0) @binding(1) var<storage, read> params: array<Real>;
@group(0) @binding(2) var<storage, read> tables: array<Real>;
@group(0) @binding(3) var<storage, read> scalars: array<Real>;
@group(0) @binding(4) var<storage, read> y: array<Real>;
@group(0) @binding(5) var<storage, read_write> dy: array<Real>;
@group(0) @binding(6) var<storage, read_write> scratch: array<Real>;

// Threads per member (one member's segment of a workgroup). The host rewrites this line
// for kernels written as `rhs_member` (GpuContext::member_layout,
// preprocess::with_member_layout): any power of two from 8 to 256.
const WG: u32 = 256u;

// Members per workgroup: each runs `rhs_member` on its own segment of WG threads (the
// workgroup has WG × MPW threads). The host rewrites this line (1 unless the model's source
// carries the `//! layout: packable` line; see ARCHITECTURE.md, "Work layouts").
const MPW: u32 = 1u;

// Segment of the calling invocation within its workgroup (0 .. MPW), set by a packed entry
// point before it calls `rhs_member`; workgroup-memory reductions of a packable model work
// on their segment only (shared/member_reduce).
var<private> rhs_segment: u32 = 0u;

// Workgroups per member: a member split over WPM workgroups (ARCHITECTURE.md, "Work
// layouts") runs its `rhs_cells` in all of them and its `rhs_totals` in a finishing
// dispatch. The host rewrites this line (1 unless the model's source carries the
// `//! layout: splittable` line; preprocess::with_workgroups_per_member).
const WPM: u32 = 1u;

// Workgroup of the calling invocation among its member's WPM workgroups (0 .. WPM), set by
// the split entry point (src/engine/gpu/layout.rs) before it calls `rhs_cells`.
var<private> rhs_group: u32 = 0u;

// Threads working on one member's grid-strided loops: WG per workgroup, WPM workgroups.
const MEMBER_THREADS: u32 = WG * WPM;

// Index of the calling invocation among its member's MEMBER_THREADS threads: the first
// item of its grid-strided loops (`lid` = index within its segment or workgroup).
fn member_thread(lid: u32) -> u32 {
    return rhs_group * WG + lid;
}

// False for a segment whose member must not change anything: the spare segments of the
// last workgroup (they evaluate a copy of the batch's last member) and, in a fused kernel,
// members that are done while others in their workgroup still step. `rhs_dy` then writes
// nothing; a packable model guards every other storage write with `rhs_active()`. Always
// true when MPW = 1 (the test folds away).
var<private> rhs_writes: bool = true;

fn rhs_active() -> bool {
    return MPW == 1u || rhs_writes;
}

// State and derivative access of a model's `rhs_member` function (the body of its `rhs`
// kernel): here the bound `y` and `dy`; in a fused step kernel (shared/fused_bindings)
// the stage vectors of the integrator's work buffer. Indices are member-major as above.
fn rhs_y(i: u32) -> Real {
    return y[i];
}

fn rhs_dy(i: u32, v: Real) {
    if (rhs_active()) {
        dy[i] = v;
    }
}

fn member_index(wg_id: vec3<u32>, num_wg: vec3<u32>) -> u32 {
    return wg_id.x + wg_id.y * num_wg.x;
}

// Mesa's llvmpipe (the lavapipe Vulkan driver) caps the loop iterations of one shader
// invocation at 65535, summed over every loop of the shader (LP_MAX_TGSI_LOOP_ITERATIONS,
// "shared between every loop"), and silently leaves loops beyond it. Kernels with O(n²)
// work per member unroll their inner loops to stay below it, and check at the end with this
// function that nothing was cut: once the budget is spent every loop stops after (at most)
// one iteration, so a loop that must run twice, with a bound the compiler cannot fold,
// tells whether the loops before it ran in full. On other drivers it always returns true.
fn loop_budget_intact() -> bool {
    var count = 0u;
    for (var k = 0u; k < dims.batch + 1u; k = k + 1u) {
        count = count + 1u;
        if (count == 2u) {
            break;
        }
    }
    return count == 2u;
}

var<workgroup> loop_budget_cut: atomic<u32>;

// Whether any invocation of this workgroup lost loop iterations (see `loop_budget_intact`;
// the budget is counted per invocation group, so one invocation's answer is not enough).
// Contains a barrier: call from uniform control flow, after the kernel's loops.
fn workgroup_loops_cut() -> bool {
    if (!loop_budget_intact()) {
        atomicStore(&loop_budget_cut, 1u);
    }
    workgroupBarrier();
    return atomicLoad(&loop_budget_cut) != 0u;
}

// A NaN made at run time (WGSL constant expressions may not be NaN): written into a
// member's derivative it makes the engine mark that member failed.
fn runtime_nan() -> Real {
    let zero = Real(dims.batch - dims.batch);
    return zero / zero;
}
