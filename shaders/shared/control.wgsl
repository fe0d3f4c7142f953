// Per-member integrator control shared by the engine's op kernels (shaders/engine/ops.wgsl)
// and the fused step kernels (src/engine/gpu/fused.rs): status codes, begin_step,
// the step-size controller and the steady-state test. CPU twins: the free functions
// `begin_step`, `control` (MemberControl) and `steady_check` in src/engine/cpu.rs.
// Include-only; `Real` and `REAL_MAX` come from the host preprocessor.

// Status codes, twins of src/engine/program.rs `status`.
const RUNNING: Real = 0.0;
const REACHED: Real = 1.0;
const STEADY: Real = 2.0;
const FAILED: Real = 3.0;

// Control laws (`ControlParams.law`), twins of `LAW_FIXED`/`LAW_ADAPTIVE` in
// src/engine/gpu/backend.rs.
const LAW_FIXED: u32 = 0u;
const LAW_ADAPTIVE: u32 = 1u;

fn is_finite(x: Real) -> bool {
    return abs(x) <= REAL_MAX;
}

fn begin_step_member(t: Real, h: Real, h_max: Real, t_end: Real, st: Real) -> Real {
    if st != RUNNING {
        return 0.0;
    }
    let remaining = t_end - t;
    if remaining <= 0.0 {
        return 0.0;
    }
    return min(min(h, h_max), remaining);
}

// Twin of `MemberControl` in src/engine/cpu.rs.
struct MemberControl {
    t: Real,
    h: Real,
    t_end: Real,
    status: Real,
    accept: Real,
    n_accept: Real,
    n_reject: Real,
    h_used: Real,
    err: Real,
}

// Twin of `ControlLaw` in src/engine/program.rs.
struct ControlLaw {
    kind: u32,
    order: u32,
    safety: Real,
    min_factor: Real,
    max_factor: Real,
    h_min: Real,
}

// safety * err^exponent. Computed in f32 even when Real is f64: f64 pow is missing or
// broken on some drivers (and Metal has no f64), and f32 is plenty for a step-size
// factor. The argument is clamped to [1e-30, 1e30] so pow stays defined; the factor is
// clamped by the caller anyway. The CPU twin computes it in f64 (see control in
// src/engine/cpu.rs): results agree to f32 rounding.
fn step_factor(safety: Real, err: Real, exponent: f32) -> Real {
    let e = clamp(f32(err), 1e-30, 1e30);
    return safety * Real(pow(e, exponent));
}

fn control_member(c_in: MemberControl, law: ControlLaw) -> MemberControl {
    var c = c_in;
    c.accept = 0.0;
    if c.status != RUNNING || c.h_used <= 0.0 {
        if c.status == RUNNING && c.t >= c.t_end {
            c.status = REACHED;
        }
        return c;
    }
    let clipped = c.h_used >= c.t_end - c.t;
    if law.kind == LAW_FIXED {
        if !is_finite(c.err) {
            c.status = FAILED;
            return c;
        }
        c.accept = 1.0;
        c.n_accept += 1.0;
        if clipped {
            c.t = c.t_end;
            c.status = REACHED;
        } else {
            c.t += c.h_used;
        }
        return c;
    }
    let exponent = -1.0 / (f32(law.order) + 1.0);
    if is_finite(c.err) && c.err <= 1.0 {
        var factor = law.max_factor;
        if c.err > 0.0 {
            factor = clamp(step_factor(law.safety, c.err, exponent), law.min_factor, law.max_factor);
        }
        c.accept = 1.0;
        c.n_accept += 1.0;
        let proposed = c.h_used * factor;
        if clipped {
            c.t = c.t_end;
            c.status = REACHED;
            c.h = max(c.h, proposed);
        } else {
            c.t += c.h_used;
            c.h = proposed;
        }
    } else {
        var factor = law.min_factor;
        if is_finite(c.err) {
            factor = clamp(step_factor(law.safety, c.err, exponent), law.min_factor, 1.0);
        }
        c.n_reject += 1.0;
        c.h = c.h_used * factor;
        if c.h < law.h_min {
            c.status = FAILED;
        }
    }
    return c;
}

fn steady_check_member(st: Real, accept: Real, rms: Real, tol: Real) -> Real {
    if st == RUNNING && accept != 0.0 && rms < tol {
        return STEADY;
    }
    return st;
}

