// Binding convention of a fused step kernel (src/engine/gpu/fused.rs): the model's
// right-hand side, written as `fn rhs_member(member: u32, lid: u32, t: Real)` against
// shared/rhs_bindings, is compiled with this file in place of shared/rhs_bindings, and
// the integrator's step loop generated from the step program is appended.
//
// The names a model's kernel uses (dims, params, tables, scalars, scratch, WG,
// member_index, rhs_y, rhs_dy, rhs_active, rhs_segment, WPM, MEMBER_THREADS,
// member_thread, loop_budget_intact, workgroup_loops_cut, runtime_nan) mean
// the same as in shared/rhs_bindings; `rhs_y`/`rhs_dy` read and write the work buffer
// at the stage vectors the step loop selects (`rhs_in`, `rhs_out`).
//
// Work buffer: vector slot s of member m, component i at s * slot_len + m * state_len + i
// (slot_len = batch × state_len). fstate: todo[batch] (attempts left in this run), then per
// member the slot of each of the program's vectors (the step loop swaps slots instead of
// copying accepted stages).

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

// Twin of `FusedParams` in src/engine/gpu/uniforms.rs.
struct FusedParams {
    // batch × state_len: the length of one vector slot.
    slot_len: u32,
    // Number of the program's vectors (slots per member).
    n_vectors: u32,
    // Most attempts one dispatch makes (bounds a dispatch's run time).
    max_attempts: u32,
    _pad1: u32,
    // Arena offset of each of the program's scalar arrays, four per entry.
    scalar_offsets: array<vec4<u32>, 8>,
}

@group(0) @binding(0) var<uniform> dims: RhsDims;
@group(0) @binding(1) var<storage, read> params: array<Real>;
@group(0) @binding(2) var<storage, read> tables: array<Real>;
@group(0) @binding(3) var<storage, read_write> scalars: array<Real>;
@group(0) @binding(4) var<storage, read_write> work: array<Real>;
@group(0) @binding(5) var<storage, read_write> fstate: array<Real>;
@group(0) @binding(6) var<storage, read_write> scratch: array<Real>;
@group(0) @binding(7) var<storage, read> fconsts: array<Real>;
@group(0) @binding(8) var<uniform> fused: FusedParams;

// Threads per member and members per workgroup: as in shared/rhs_bindings (the host
// rewrites both lines, preprocess::with_member_layout).
const WG: u32 = 256u;
const MPW: u32 = 1u;

// As in shared/rhs_bindings; set by the step loop.
var<private> rhs_segment: u32 = 0u;
var<private> rhs_writes: bool = true;

// As in shared/rhs_bindings; a fused step kernel runs each member inside one workgroup
// segment (a member split over several workgroups runs op by op).
const WPM: u32 = 1u;
const MEMBER_THREADS: u32 = WG;

fn member_thread(lid: u32) -> u32 {
    return lid;
}

fn rhs_active() -> bool {
    return MPW == 1u || rhs_writes;
}

fn member_index(wg_id: vec3<u32>, num_wg: vec3<u32>) -> u32 {
    return wg_id.x + wg_id.y * num_wg.x;
}

// Offsets into `work` of the state the right-hand side reads and of the derivative it
// writes (slot × slot_len), set by the step loop before each evaluation.
var<private> rhs_in: u32;
var<private> rhs_out: u32;

fn rhs_y(i: u32) -> Real {
    return work[rhs_in + i];
}

fn rhs_dy(i: u32, v: Real) {
    if (rhs_active()) {
        work[rhs_out + i] = v;
    }
}

// See shared/rhs_bindings: lavapipe's loop budget of 65535 iterations per invocation.
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

fn workgroup_loops_cut() -> bool {
    if (!loop_budget_intact()) {
        atomicStore(&loop_budget_cut, 1u);
    }
    workgroupBarrier();
    return atomicLoad(&loop_budget_cut) != 0u;
}

fn runtime_nan() -> Real {
    let zero = Real(dims.batch - dims.batch);
    return zero / zero;
}
