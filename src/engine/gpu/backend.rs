//! [`GpuBackend`]: batch storage on the device and step programs compiled to dispatches.
//!
//! Storage: each [`VecId`] is its own storage buffer (`batch × state_len` reals); every
//! [`ScalarId`] is a slice of one *scalar arena* buffer (array `k` at offset
//! `k × batch`), so the controller kernels read and write all their arrays through one
//! binding, addressed by offsets in each op's uniform block. Real op coefficients go to
//! a per-program constant buffer (`consts`, index 0 holds a NaN).
//!
//! `compile` builds each op's bind group and uniform buffer once; `run` only records
//! dispatches and submits. Growing the arena (a scalar array allocated after `compile`)
//! replaces its buffer, so compiled programs rebuild their bind groups on the next `run`.

use std::sync::Arc;

use super::fused::{self, FusedPlan};
use super::layout::{self, MemberLayout};
use super::preprocess::{preprocess, shader, with_member_layout, with_workgroups_per_member};
use super::uniforms::*;
use super::{wait, Access, GpuContext, Kernel, WG};
use crate::engine::backend::{Backend, BackendInfo, Precision, ProgramId};
use crate::engine::model::{BatchLayout, BatchProblem};
use crate::engine::program::{ControlIds, ControlLaw, Op, ScalarId, StepProgram, VecId};
use crate::{NeqkinError, Result};

/// Input vectors bound per `lincomb` dispatch (twin of `LINCOMB_MAX_TERMS` in
/// shaders/engine/ops.wgsl); longer combinations are split into chained dispatches.
pub const LINCOMB_MAX_TERMS: usize = 5;

/// `ControlParams.law` codes, twins of `LAW_FIXED`/`LAW_ADAPTIVE` in ops.wgsl.
const LAW_FIXED: u32 = 0;
const LAW_ADAPTIVE: u32 = 1;

/// Dispatches recorded per command buffer before it is submitted.
const DISPATCHES_PER_SUBMIT: usize = 4096;

/// Scalar arrays the arena holds before its first growth.
const INITIAL_ARENA_ARRAYS: usize = 16;

const OPS: &str = "engine/ops.wgsl";

use Access::{Read as R, ReadWrite as RW, Uniform as U};

/// Bindings of each engine kernel, as declared in ops.wgsl.
const BEGIN_STEP: &[(u32, Access)] = &[(0, U), (1, RW)];
const LINCOMB: &[(u32, Access)] = &[(0, U), (1, RW), (2, R), (3, RW), (4, R), (5, R), (6, R), (7, R), (8, R)];
const SCALAR_AXPY: &[(u32, Access)] = &[(0, U), (1, RW), (2, R)];
const ERROR_NORM: &[(u32, Access)] = &[(0, U), (1, RW), (2, R), (3, R), (4, R), (5, R), (6, R)];
const CONTROL: &[(u32, Access)] = &[(0, U), (1, RW), (2, R)];
const SELECT: &[(u32, Access)] = &[(0, U), (1, RW), (3, RW), (4, R)];
const STEADY_CHECK: &[(u32, Access)] = &[(0, U), (1, RW), (2, R), (3, R)];
/// Bindings of the two-level reductions for split members (`*_partial`, `*_finish`):
/// their single kernel's, plus the partial sums at binding 9.
const ERROR_NORM_SPLIT: &[(u32, Access)] = &[(0, U), (1, RW), (2, R), (3, R), (4, R), (5, R), (6, R), (9, RW)];
const STEADY_CHECK_SPLIT: &[(u32, Access)] = &[(0, U), (1, RW), (2, R), (3, R), (9, RW)];
/// Bindings of a model RHS kernel (shaders/shared/rhs_bindings.wgsl).
const RHS: &[(u32, Access)] = &[(0, U), (1, R), (2, R), (3, R), (4, R), (5, RW), (6, RW)];
/// Bindings of the split entry points `rhs_split` and `rhs_finish` (layout::SPLIT_RHS_ENTRIES):
/// a model RHS kernel's plus the partial sums at binding 7.
const RHS_SPLIT: &[(u32, Access)] = &[(0, U), (1, R), (2, R), (3, R), (4, R), (5, RW), (6, RW), (7, RW)];
/// Bindings of a fused step kernel (shaders/shared/fused_bindings.wgsl).
const FUSED: &[(u32, Access)] = &[(0, U), (1, R), (2, R), (3, RW), (4, RW), (5, RW), (6, RW), (7, R), (8, U)];

/// Most attempts one fused dispatch makes, so that no dispatch runs for long (driver
/// watchdogs); runs of more attempts are several dispatches in one submission.
const FUSED_MAX_ATTEMPTS: usize = 64;

struct Kernels {
    begin_step: Kernel,
    lincomb: Kernel,
    scalar_axpy: Kernel,
    error_norm: Kernel,
    control: Kernel,
    select: Kernel,
    steady_check: Kernel,
    /// The model's `rhs` (or `rhs_packed`; with members split over workgroups `rhs_split`).
    rhs: Kernel,
    /// The second-level kernels of members split over several workgroups.
    split: Option<SplitKernels>,
}

/// Kernels of the layout with several workgroups per member: the engine's reductions in two
/// levels (per-workgroup partial sums, then one invocation per member) and the RHS's
/// finishing step (`rhs_finish`, the member totals).
struct SplitKernels {
    error_norm_partial: Kernel,
    error_norm_finish: Kernel,
    steady_check_partial: Kernel,
    steady_check_finish: Kernel,
    rhs_finish: Kernel,
}

/// One recorded dispatch of a compiled program.
struct Dispatch {
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    grid: (u32, u32),
}

struct Compiled {
    program: StepProgram,
    /// Arena generation the bind groups refer to.
    generation: u64,
    dispatches: Vec<Dispatch>,
    /// The program as one fused kernel (then `dispatches` is empty).
    fused: Option<Fused>,
    /// Kept alive for the bind groups.
    _buffers: Vec<wgpu::Buffer>,
}

/// A program compiled to a fused step kernel (see [`super::fused`]).
struct Fused {
    /// Logical vector k lives in slot k of `work` (when unpermuted).
    vectors: Vec<VecId>,
    /// Vectors carried between attempts: copied into `work` when the program becomes resident.
    live_in: Vec<VecId>,
    step: Dispatch,
    unpermute: Dispatch,
    work: wgpu::Buffer,
    /// `todo[batch]`, then the slot map (`vectors.len()` per member).
    fstate: wgpu::Buffer,
    /// Attempts one dispatch completed before lavapipe's loop budget cut it (learned).
    attempts_per_dispatch: usize,
}

/// GPU backend for one batch problem.
pub struct GpuBackend {
    ctx: Arc<GpuContext>,
    problem: Arc<dyn BatchProblem>,
    layout: BatchLayout,
    precision: Precision,
    kernels: Kernels,
    params: wgpu::Buffer,
    tables: wgpu::Buffer,
    scratch: wgpu::Buffer,
    vectors: Vec<wgpu::Buffer>,
    arena: wgpu::Buffer,
    arena_arrays: usize,
    n_scalars: usize,
    generation: u64,
    programs: Vec<Compiled>,
    /// Compute dispatches recorded by [`Backend::run`] so far.
    dispatches: u64,
    /// Whether `compile` builds fused step kernels where it can.
    fuse: bool,
    /// Work layout of the model's `rhs` kernel and of fused step kernels
    /// ([`GpuContext::member_layout`] for `rhs_member` kernels, else one member per
    /// [`WG`]-thread workgroup).
    member_layout: MemberLayout,
    /// Workgroup grid of the `rhs` dispatch (one workgroup per `members_per_workgroup` members).
    rhs_grid: (u32, u32),
    /// The fused program whose work buffer holds the current values of its vectors (the
    /// vector buffers are stale until [`GpuBackend::flush`]).
    resident: Option<usize>,
}

impl GpuBackend {
    /// Uploads `problem`'s parameters and tables and compiles the engine and RHS kernels
    /// at `precision` (see [`GpuContext::resolve_precision`]).
    pub fn new(ctx: Arc<GpuContext>, problem: Arc<dyn BatchProblem>, precision: Precision) -> Result<Self> {
        Self::build_backend(ctx, problem, precision, None)
    }

    /// [`GpuBackend::new`] with the member kernels in `layout` instead of the one
    /// [`GpuContext::member_layout`] chooses (tests and benchmarks comparing layouts; the
    /// environment overrides are process-wide). Errors when the adapter or the model cannot
    /// run it: threads per member not a power of two, more threads per workgroup than the
    /// adapter allows, several members per workgroup for a kernel that is not packable (or
    /// not written as `rhs_member`), several workgroups per member for a kernel that is
    /// not splittable, together with several members per workgroup, or more than
    /// [`layout::MAX_WGS_PER_MEMBER`].
    pub fn with_layout(
        ctx: Arc<GpuContext>,
        problem: Arc<dyn BatchProblem>,
        precision: Precision,
        layout: MemberLayout,
    ) -> Result<Self> {
        Self::build_backend(ctx, problem, precision, Some(layout))
    }

    fn build_backend(
        ctx: Arc<GpuContext>,
        problem: Arc<dyn BatchProblem>,
        precision: Precision,
        forced: Option<MemberLayout>,
    ) -> Result<Self> {
        let precision = ctx.resolve_precision(Some(precision))?;
        problem.check_precision(precision.unit_roundoff())?;
        let layout = problem.layout();
        if layout.batch == 0 || layout.state_len == 0 {
            return Err(NeqkinError::invalid("batch", format!("empty batch layout {layout:?}")));
        }
        let arena_arrays = INITIAL_ARENA_ARRAYS.min(max_arena_arrays(&ctx, precision, layout.batch)).max(1);
        let ops = preprocess(OPS, shader(OPS).expect("ops.wgsl is embedded"), precision)?;
        let k = |entry: &str, bindings: &[(u32, Access)]| ctx.kernel(OPS, &ops, entry, bindings);
        let source = problem.kernel();
        // Kernels written as `rhs_member` get the adapter's member layout (also used by
        // their fused step kernels); other model kernels keep one member per WG = 256.
        let member_kernel = source.source.contains("fn rhs_member(");
        let splittable = member_kernel && layout::splittable(&source.source);
        if let Some(l) = forced {
            let groups_ok = l.workgroups_per_member == 1
                || (splittable
                    && l.members_per_workgroup == 1
                    && l.workgroups_per_member <= layout::MAX_WGS_PER_MEMBER);
            let ok = l.threads_per_member.is_power_of_two()
                && l.members_per_workgroup >= 1
                && l.workgroups_per_member >= 1
                && groups_ok
                && l.workgroup_threads() <= ctx.limits().max_compute_invocations_per_workgroup
                && l.workgroup_threads() <= ctx.limits().max_compute_workgroup_size_x
                && (l == MemberLayout::single(WG)
                    || (member_kernel && (l.members_per_workgroup == 1 || layout::packable(&source.source))));
            if !ok {
                return Err(NeqkinError::invalid(
                    "layout",
                    format!("{} cannot run {} in the layout {l}", ctx.info().name, source.name),
                ));
            }
        }
        let member_layout = if let Some(l) = forced {
            l
        } else if member_kernel {
            ctx.member_layout(
                layout::MemberShape {
                    batch: layout.batch,
                    state_len: layout.state_len,
                    parallel_width: problem.member_parallel_width(),
                    loops_per_component: problem.member_loops_per_component(),
                    packable: layout::packable(&source.source),
                    splittable,
                },
                precision,
            )
        } else {
            MemberLayout::single(WG)
        };
        let packed = member_layout.members_per_workgroup > 1;
        let split = member_layout.workgroups_per_member > 1;
        let (rhs_entry, appended) = if split {
            ("rhs_split", layout::SPLIT_RHS_ENTRIES)
        } else if packed {
            ("rhs_packed", layout::PACKED_RHS_ENTRY)
        } else {
            ("rhs", "")
        };
        let mut rhs_src = preprocess(&source.name, &format!("{}{appended}", source.source), precision)?;
        if member_layout != MemberLayout::single(WG) {
            rhs_src = with_member_layout(
                &source.name,
                &rhs_src,
                member_layout.threads_per_member,
                member_layout.members_per_workgroup,
            )?;
        }
        if split {
            rhs_src = with_workgroups_per_member(&source.name, &rhs_src, member_layout.workgroups_per_member)?;
        }
        let split_kernels = if split {
            Some(SplitKernels {
                error_norm_partial: k("error_norm_partial", ERROR_NORM_SPLIT)?,
                error_norm_finish: k("error_norm_finish", ERROR_NORM_SPLIT)?,
                steady_check_partial: k("steady_check_partial", STEADY_CHECK_SPLIT)?,
                steady_check_finish: k("steady_check_finish", STEADY_CHECK_SPLIT)?,
                rhs_finish: ctx.kernel(&source.name, &rhs_src, "rhs_finish", RHS_SPLIT)?,
            })
        } else {
            None
        };
        let rhs_bindings = if split { RHS_SPLIT } else { RHS };
        let rhs_grid = ctx.grid(member_layout.workgroups(layout.batch));
        let kernels = Kernels {
            begin_step: k("begin_step", BEGIN_STEP)?,
            lincomb: k("lincomb", LINCOMB)?,
            scalar_axpy: k("scalar_axpy", SCALAR_AXPY)?,
            error_norm: k("error_norm", ERROR_NORM)?,
            control: k("control", CONTROL)?,
            select: k("select", SELECT)?,
            steady_check: k("steady_check", STEADY_CHECK)?,
            rhs: ctx.kernel(&source.name, &rhs_src, rhs_entry, rhs_bindings)?,
            split: split_kernels,
        };
        // Longer arrays are accepted (the CPU backend only slices what it needs too).
        let params_len = layout.batch * layout.params_len;
        let tables_len = layout.table_len + (layout.batch - 1) * layout.table_stride;
        check_at_least("params", problem.params().len(), params_len)?;
        check_at_least("tables", problem.tables().len(), tables_len)?;
        let backend = GpuBackend {
            params: storage(&ctx, precision, "params", params_len)?,
            tables: storage(&ctx, precision, "tables", tables_len)?,
            scratch: storage(&ctx, precision, "scratch", layout.batch * layout.scratch_len)?,
            arena: storage(&ctx, precision, "scalar arena", arena_arrays * layout.batch)?,
            ctx,
            layout,
            precision,
            kernels,
            vectors: Vec::new(),
            arena_arrays,
            n_scalars: 0,
            generation: 0,
            programs: Vec::new(),
            dispatches: 0,
            fuse: std::env::var("NEQKIN_GPU_FUSED").map_or(true, |v| v != "0"),
            member_layout,
            rhs_grid,
            resident: None,
            problem,
        };
        backend.upload(&backend.params, 0, &backend.problem.params()[..params_len]);
        backend.upload(&backend.tables, 0, &backend.problem.tables()[..tables_len]);
        Ok(backend)
    }

    /// Whether programs compiled from now on may become fused step kernels (default on;
    /// `NEQKIN_GPU_FUSED=0` turns it off). Off, every op is its own dispatch: the
    /// reference path.
    pub fn set_fused(&mut self, on: bool) {
        self.fuse = on;
    }

    /// Whether `program` (an id from `compile`) runs as a fused step kernel.
    pub fn is_fused(&self, program: ProgramId) -> bool {
        self.programs.get(program.0).is_some_and(|c| c.fused.is_some())
    }

    /// The kernel precision.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The work layout of the model's member kernels (`rhs` and fused step kernels).
    pub fn member_layout(&self) -> MemberLayout {
        self.member_layout
    }

    /// The shared device context.
    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    fn real(&self) -> u64 {
        GpuContext::real_size(self.precision)
    }

    fn upload(&self, buffer: &wgpu::Buffer, offset_reals: u64, data: &[f64]) {
        upload_reals(&self.ctx, self.precision, buffer, offset_reals, data)
    }

    fn download(&self, buffer: &wgpu::Buffer, offset_reals: u64, len: usize) -> Result<Vec<f64>> {
        download_reals(&self.ctx, self.precision, buffer, offset_reals, len)
    }

    fn vector(&self, v: VecId) -> Result<&wgpu::Buffer> {
        self.vectors.get(v.0).ok_or_else(|| NeqkinError::invalid("program", format!("unknown vector {v:?}")))
    }

    fn scalar_offset(&self, s: ScalarId) -> Result<u32> {
        if s.0 >= self.n_scalars {
            return Err(NeqkinError::invalid("program", format!("unknown scalar array {s:?}")));
        }
        Ok((s.0 * self.layout.batch) as u32)
    }

    fn ctrl_offsets(&self, c: &ControlIds) -> Result<[u32; 10]> {
        Ok([
            self.scalar_offset(c.t)?,
            self.scalar_offset(c.h)?,
            self.scalar_offset(c.t_end)?,
            self.scalar_offset(c.status)?,
            self.scalar_offset(c.accept)?,
            self.scalar_offset(c.n_accept)?,
            self.scalar_offset(c.n_reject)?,
            self.scalar_offset(c.h_used)?,
            self.scalar_offset(c.err)?,
            self.scalar_offset(c.h_max)?,
        ])
    }

    /// Builds the dispatches of `program` against the current arena.
    fn build(&self, program: &StepProgram) -> Result<Compiled> {
        // A member split over several workgroups cannot run a fused step kernel (no barrier
        // spans workgroups inside one dispatch): such a layout runs op by op.
        let split = self.kernels.split.as_ref();
        if self.fuse && split.is_none() && self.fused_attempt_fits(program) {
            let one_call = self.problem.kernel().source.contains(fused::ONE_RHS_CALL_MARKER);
            if let Some(plan) = fused::plan(program, one_call) {
                if let Some(f) = self.build_fused(&plan, self.fused_attempts_per_dispatch(program))? {
                    return Ok(Compiled {
                        program: program.clone(),
                        generation: self.generation,
                        dispatches: Vec::new(),
                        fused: Some(f),
                        _buffers: Vec::new(),
                    });
                }
            }
        }
        let l = self.layout;
        let batch = l.batch as u32;
        let n = (l.batch * l.state_len) as u32;
        let per_member = self.ctx.grid(u64::from(batch).div_ceil(u64::from(WG)));
        let per_element = self.ctx.grid(u64::from(n).div_ceil(u64::from(WG)));
        let per_workgroup = self.ctx.grid(u64::from(batch));
        let groups = self.member_layout.workgroups_per_member;
        // Split members: one workgroup per (member, group) for the first level of the
        // reductions, and the partial sums of every two-level reduction in one buffer
        // (the dispatches run in order, so they can share it): two per workgroup for the
        // RHS, one per tolerance block for the error norm.
        let per_split_workgroup = self.ctx.grid(u64::from(batch) * u64::from(groups));
        let rhs_finish_grid =
            self.ctx.grid(u64::from(batch).div_ceil(u64::from(self.member_layout.threads_per_member)));
        let partials = match split {
            Some(_) => {
                let sums = program
                    .ops
                    .iter()
                    .map(|op| match op {
                        Op::ErrorNorm { blocks, .. } => blocks.len(),
                        _ => 0,
                    })
                    .fold(2, usize::max);
                Some(storage(&self.ctx, self.precision, "partial sums", l.batch * groups as usize * sums)?)
            }
            None => None,
        };

        // Constants first (their buffer is bound by every op), uniforms recorded as bytes.
        let mut consts: Vec<f64> = vec![f64::NAN];
        let mut push = |values: &[f64]| -> u32 {
            consts.extend_from_slice(values);
            (consts.len() - values.len()) as u32
        };
        struct Planned<'a> {
            kernel: &'a Kernel,
            uniform: Vec<u8>,
            /// Storage bindings after the uniform: (binding, buffer); `None` = consts.
            storage: Vec<(u32, Option<&'a wgpu::Buffer>)>,
            grid: (u32, u32),
        }
        let arena = Some(&self.arena);
        let mut planned: Vec<Planned> = Vec::new();
        let k = &self.kernels;
        for op in &program.ops {
            match op {
                Op::BeginStep { ctrl } => {
                    let [t, h, t_end, status, _, _, _, h_used, _, h_max] = self.ctrl_offsets(ctrl)?;
                    let p = BeginStepParams { batch, t, h, h_max, t_end, status, h_used, _pad: 0 };
                    planned.push(Planned {
                        kernel: &k.begin_step,
                        uniform: bytemuck::bytes_of(&p).to_vec(),
                        storage: vec![(1, arena)],
                        grid: per_member,
                    });
                }
                Op::Rhs { t, y, dy } => {
                    if y == dy {
                        return Err(NeqkinError::invalid("program", "Rhs: y and dy must differ"));
                    }
                    let p = RhsDims {
                        batch,
                        state_len: l.state_len as u32,
                        params_len: l.params_len as u32,
                        table_len: l.table_len as u32,
                        table_stride: l.table_stride as u32,
                        scratch_len: l.scratch_len as u32,
                        t_offset: self.scalar_offset(*t)?,
                        _pad: 0,
                    };
                    let storage = vec![
                        (1, Some(&self.params)),
                        (2, Some(&self.tables)),
                        (3, arena),
                        (4, Some(self.vector(*y)?)),
                        (5, Some(self.vector(*dy)?)),
                        (6, Some(&self.scratch)),
                    ];
                    match split {
                        None => planned.push(Planned {
                            kernel: &k.rhs,
                            uniform: bytemuck::bytes_of(&p).to_vec(),
                            storage,
                            grid: self.rhs_grid,
                        }),
                        Some(sk) => {
                            let mut storage = storage;
                            storage.push((7, partials.as_ref()));
                            planned.push(Planned {
                                kernel: &k.rhs,
                                uniform: bytemuck::bytes_of(&p).to_vec(),
                                storage: storage.clone(),
                                grid: self.rhs_grid,
                            });
                            planned.push(Planned {
                                kernel: &sk.rhs_finish,
                                uniform: bytemuck::bytes_of(&p).to_vec(),
                                storage,
                                grid: rhs_finish_grid,
                            });
                        }
                    }
                }
                Op::Lincomb { out, plain, h, scaled } => {
                    if plain.iter().chain(scaled).any(|(_, v)| v == out) {
                        return Err(NeqkinError::invalid("program", "Lincomb: out may alias none of the inputs"));
                    }
                    let terms: Vec<(f64, VecId, bool)> = plain
                        .iter()
                        .map(|&(c, v)| (c, v, false))
                        .chain(scaled.iter().map(|&(c, v)| (c, v, true)))
                        .collect();
                    let h = self.scalar_offset(*h)?;
                    let out_buf = self.vector(*out)?;
                    let chunks: Vec<&[(f64, VecId, bool)]> =
                        if terms.is_empty() { vec![&[]] } else { terms.chunks(LINCOMB_MAX_TERMS).collect() };
                    for (ci, chunk) in chunks.into_iter().enumerate() {
                        let coefs: Vec<f64> = chunk.iter().map(|t| t.0).collect();
                        let p = LincombParams {
                            n,
                            state_len: l.state_len as u32,
                            h,
                            coef: push(&coefs),
                            n_plain: chunk.iter().filter(|t| !t.2).count() as u32,
                            n_terms: chunk.len() as u32,
                            accumulate: u32::from(ci > 0),
                            _pad: 0,
                        };
                        let mut storage = vec![(1, arena), (2, None), (3, Some(out_buf))];
                        for j in 0..LINCOMB_MAX_TERMS {
                            let b = match chunk.get(j) {
                                Some(t) => Some(self.vector(t.1)?),
                                None => None,
                            };
                            storage.push((4 + j as u32, b));
                        }
                        planned.push(Planned {
                            kernel: &k.lincomb,
                            uniform: bytemuck::bytes_of(&p).to_vec(),
                            storage,
                            grid: per_element,
                        });
                    }
                }
                Op::ScalarAxpy { out, a, c, h } => {
                    let p = ScalarAxpyParams {
                        batch,
                        out: self.scalar_offset(*out)?,
                        a: self.scalar_offset(*a)?,
                        h: self.scalar_offset(*h)?,
                        coef: push(&[*c]),
                        ..Default::default()
                    };
                    planned.push(Planned {
                        kernel: &k.scalar_axpy,
                        uniform: bytemuck::bytes_of(&p).to_vec(),
                        storage: vec![(1, arena), (2, None)],
                        grid: per_member,
                    });
                }
                Op::ErrorNorm { out, err, y, y_new, reference, blocks } => {
                    let mut values = Vec::with_capacity(4 * blocks.len());
                    for b in blocks {
                        if b.start > b.end || b.end > l.state_len {
                            return Err(NeqkinError::invalid(
                                "program",
                                format!("ErrorNorm: block {b:?} outside the state"),
                            ));
                        }
                        values.extend_from_slice(&[b.start as f64, b.end as f64, b.atol, b.rtol]);
                    }
                    let p = ErrorNormParams {
                        batch,
                        state_len: l.state_len as u32,
                        out: self.scalar_offset(*out)?,
                        n_blocks: blocks.len() as u32,
                        blocks: push(&values),
                        deviation: u32::from(reference.is_some()),
                        groups,
                        ..Default::default()
                    };
                    // Without a reference the kernel never reads binding 6: bind y there.
                    let storage = vec![
                        (1, arena),
                        (2, None),
                        (3, Some(self.vector(*err)?)),
                        (4, Some(self.vector(*y)?)),
                        (5, Some(self.vector(*y_new)?)),
                        (6, Some(self.vector(reference.unwrap_or(*y))?)),
                    ];
                    match split {
                        None => planned.push(Planned {
                            kernel: &k.error_norm,
                            uniform: bytemuck::bytes_of(&p).to_vec(),
                            storage,
                            grid: per_workgroup,
                        }),
                        Some(sk) => {
                            let mut storage = storage;
                            storage.push((9, partials.as_ref()));
                            planned.push(Planned {
                                kernel: &sk.error_norm_partial,
                                uniform: bytemuck::bytes_of(&p).to_vec(),
                                storage: storage.clone(),
                                grid: per_split_workgroup,
                            });
                            planned.push(Planned {
                                kernel: &sk.error_norm_finish,
                                uniform: bytemuck::bytes_of(&p).to_vec(),
                                storage,
                                grid: per_member,
                            });
                        }
                    }
                }
                Op::Control { ctrl, law } => {
                    let [t, h, t_end, status, accept, n_accept, n_reject, h_used, err, _] = self.ctrl_offsets(ctrl)?;
                    let (law, order, coef) = match *law {
                        ControlLaw::Fixed => (LAW_FIXED, 0, push(&[0.0; 4])),
                        ControlLaw::Adaptive { order, safety, min_factor, max_factor, h_min } => {
                            (LAW_ADAPTIVE, order, push(&[safety, min_factor, max_factor, h_min]))
                        }
                    };
                    let p = ControlParams {
                        batch,
                        t,
                        h,
                        t_end,
                        status,
                        accept,
                        n_accept,
                        n_reject,
                        h_used,
                        err,
                        law,
                        order,
                        coef,
                        ..Default::default()
                    };
                    planned.push(Planned {
                        kernel: &k.control,
                        uniform: bytemuck::bytes_of(&p).to_vec(),
                        storage: vec![(1, arena), (2, None)],
                        grid: per_member,
                    });
                }
                Op::Select { dst, src, flag } => {
                    let flag = self.scalar_offset(*flag)?;
                    if dst == src {
                        continue; // copying a vector onto itself does nothing
                    }
                    let p = SelectParams { n, state_len: l.state_len as u32, flag, _pad: 0 };
                    let storage = vec![(1, arena), (3, Some(self.vector(*dst)?)), (4, Some(self.vector(*src)?))];
                    planned.push(Planned {
                        kernel: &k.select,
                        uniform: bytemuck::bytes_of(&p).to_vec(),
                        storage,
                        grid: per_element,
                    });
                }
                Op::SteadyCheck { ctrl, dy, range, tol } => {
                    if range.0 > range.1 || range.1 > l.state_len {
                        return Err(NeqkinError::invalid(
                            "program",
                            format!("SteadyCheck: range {range:?} outside the state"),
                        ));
                    }
                    let p = SteadyCheckParams {
                        batch,
                        state_len: l.state_len as u32,
                        range_start: range.0 as u32,
                        range_end: range.1 as u32,
                        status: self.scalar_offset(ctrl.status)?,
                        accept: self.scalar_offset(ctrl.accept)?,
                        tol: push(&[*tol]),
                        groups,
                    };
                    let storage = vec![(1, arena), (2, None), (3, Some(self.vector(*dy)?))];
                    match split {
                        None => planned.push(Planned {
                            kernel: &k.steady_check,
                            uniform: bytemuck::bytes_of(&p).to_vec(),
                            storage,
                            grid: per_workgroup,
                        }),
                        Some(sk) => {
                            let mut storage = storage;
                            storage.push((9, partials.as_ref()));
                            planned.push(Planned {
                                kernel: &sk.steady_check_partial,
                                uniform: bytemuck::bytes_of(&p).to_vec(),
                                storage: storage.clone(),
                                grid: per_split_workgroup,
                            });
                            planned.push(Planned {
                                kernel: &sk.steady_check_finish,
                                uniform: bytemuck::bytes_of(&p).to_vec(),
                                storage,
                                grid: per_member,
                            });
                        }
                    }
                }
            }
        }

        let ctx = &*self.ctx;
        ctx.scoped(
            || "compiling step program (bind groups, uniforms)".into(),
            || {
                let consts_buf = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("program consts"),
                    size: consts.len() as u64 * self.real(),
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                self.upload(&consts_buf, 0, &consts);
                let mut buffers = Vec::with_capacity(planned.len() + 1);
                let mut dispatches = Vec::with_capacity(planned.len());
                for p in &planned {
                    let uniform = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("op uniform"),
                        size: p.uniform.len() as u64,
                        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                        mapped_at_creation: false,
                    });
                    ctx.queue.write_buffer(&uniform, 0, &p.uniform);
                    let mut entries = vec![wgpu::BindGroupEntry { binding: 0, resource: uniform.as_entire_binding() }];
                    for &(binding, buffer) in &p.storage {
                        let b = buffer.unwrap_or(&consts_buf);
                        entries.push(wgpu::BindGroupEntry { binding, resource: b.as_entire_binding() });
                    }
                    let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                        label: None,
                        layout: &p.kernel.layout,
                        entries: &entries,
                    });
                    dispatches.push(Dispatch { pipeline: p.kernel.pipeline.clone(), bind_group, grid: p.grid });
                    buffers.push(uniform);
                }
                buffers.push(consts_buf);
                buffers.extend(partials.clone());
                Compiled {
                    program: program.clone(),
                    generation: self.generation,
                    dispatches,
                    fused: None,
                    _buffers: buffers,
                }
            },
        )
    }

    /// Whether one attempt of `program` fits lavapipe's loop budget in one fused dispatch
    /// at this backend's member workgroup size (always on other adapters). Where it does
    /// not (cavity level 1 on a large grid: O(n) loop iterations per component), a fused
    /// kernel would fail every member (its first attempt is always cut), whereas the
    /// op-by-op path runs one evaluation per dispatch and fails a member only when a single
    /// evaluation is cut: the program then runs op by op.
    fn fused_attempt_fits(&self, program: &StepProgram) -> bool {
        if self.ctx.adapter_info.device_type != wgpu::DeviceType::Cpu {
            return true;
        }
        let evaluations = program.ops.iter().filter(|op| matches!(op, Op::Rhs { .. })).count();
        let loops = self.problem.member_loops_per_component();
        let fits = super::cpu_member_loops_fit(
            self.layout.state_len,
            loops,
            self.member_layout.threads_per_member as usize,
            evaluations,
        );
        if !fits && debug_fused() {
            eprintln!(
                "fused: one attempt ({evaluations} evaluations, {loops} loops per component, {} threads) exceeds \
                 the loop budget: op by op",
                self.member_layout.threads_per_member
            );
        }
        fits
    }

    /// Most attempts one fused dispatch of `program` makes: [`FUSED_MAX_ATTEMPTS`], except
    /// with several members per workgroup on a CPU adapter, where a dispatch makes no more
    /// attempts than lavapipe's loop budget holds. There a cut must not happen at all: the
    /// budget is spent per 8-lane group, so the segments of a packed workgroup run out at
    /// different attempts (a member that is done skips its loops), the cut segments then
    /// leave their reduction loops early and the workgroup's barriers no longer pair up;
    /// the neighbours of the cut member came back with wrong states
    /// (tests/gpu_layout_hostile.rs). One member per workgroup resumes after a cut as before.
    fn fused_attempts_per_dispatch(&self, program: &StepProgram) -> usize {
        if self.ctx.adapter_info.device_type != wgpu::DeviceType::Cpu || self.member_layout.members_per_workgroup == 1 {
            return FUSED_MAX_ATTEMPTS;
        }
        let evaluations = program.ops.iter().filter(|op| matches!(op, Op::Rhs { .. })).count().max(1);
        let per_invocation = self.layout.state_len.div_ceil(self.member_layout.threads_per_member as usize);
        let loops = self.problem.member_loops_per_component();
        // As `cpu_member_loops_fit`, plus the attempt's own passes (error norm, steady-state
        // test, budget check) and their reduction trees.
        let per_attempt = evaluations * (per_invocation * (loops + 1) + 64) + 4 * per_invocation + 64;
        (super::LAVAPIPE_LOOP_BUDGET / per_attempt).clamp(1, FUSED_MAX_ATTEMPTS)
    }

    /// The fused kernel of `plan` with its buffers and bind groups, or `None` when the
    /// model has no `rhs_member` function or the work buffer would not fit one binding.
    fn build_fused(&self, plan: &FusedPlan, max_attempts: usize) -> Result<Option<Fused>> {
        let source = self.problem.kernel();
        let Some(text) = fused::kernel_source(&source.source, plan) else { return Ok(None) };
        let l = self.layout;
        let slot_len = l.batch * l.state_len;
        let nv = plan.vectors.len();
        let Some(work_len) = slot_len.checked_mul(nv) else { return Ok(None) };
        if work_len as u64 * self.real() > self.ctx.max_binding() || work_len > u32::MAX as usize {
            return Ok(None);
        }
        let name = format!("{} (fused)", source.name);
        let mut text = preprocess(&name, &text, self.precision)?;
        let ml = self.member_layout;
        if ml != MemberLayout::single(WG) {
            text = with_member_layout(&name, &text, ml.threads_per_member, ml.members_per_workgroup)?;
        }
        let started = std::time::Instant::now();
        if debug_fused() {
            eprintln!("fused: compiling {name}, {} lines", text.lines().count());
            if let Ok(dir) = std::env::var("NEQKIN_FUSED_DEBUG") {
                let _ = std::fs::write(format!("{dir}/fused.wgsl"), &text);
            }
        }
        let step = self.ctx.kernel(&name, &text, "fused_step", FUSED)?;
        let unpermute = self.ctx.kernel(&name, &text, "fused_unpermute", FUSED)?;
        if debug_fused() {
            eprintln!("fused: compiled in {:.2} s", started.elapsed().as_secs_f64());
        }
        let work = storage(&self.ctx, self.precision, "fused work", work_len)?;
        let fstate = storage(&self.ctx, self.precision, "fused state", l.batch * (1 + nv))?;
        let consts = storage(&self.ctx, self.precision, "fused consts", plan.consts.len())?;
        self.upload(&consts, 0, &plan.consts);
        let identity: Vec<f64> = (0..l.batch).flat_map(|_| (0..nv).map(|k| k as f64)).collect();
        self.upload(&fstate, l.batch as u64, &identity);
        let t_offset = self.scalar_offset(plan.scalars[0])?;
        let dims = RhsDims {
            batch: l.batch as u32,
            state_len: l.state_len as u32,
            params_len: l.params_len as u32,
            table_len: l.table_len as u32,
            table_stride: l.table_stride as u32,
            scratch_len: l.scratch_len as u32,
            t_offset,
            _pad: 0,
        };
        let mut offsets = [[0u32; 4]; 8];
        for (k, s) in plan.scalars.iter().enumerate() {
            offsets[k / 4][k % 4] = self.scalar_offset(*s)?;
        }
        let fp = FusedParams {
            slot_len: slot_len as u32,
            n_vectors: nv as u32,
            max_attempts: max_attempts as u32,
            _pad: 0,
            scalar_offsets: offsets,
        };
        let ctx = &*self.ctx;
        // The step kernel packs members as the layout says; the unpermute kernel runs one
        // member per workgroup.
        let step_grid = ctx.grid(self.member_layout.workgroups(l.batch));
        let unpermute_grid = ctx.grid(l.batch as u64);
        let (step, unpermute) = ctx.scoped(
            || format!("binding fused kernel of {}", source.name),
            || {
                let uniform = |bytes: &[u8]| {
                    let b = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("fused uniform"),
                        size: bytes.len() as u64,
                        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                        mapped_at_creation: false,
                    });
                    ctx.queue.write_buffer(&b, 0, bytes);
                    b
                };
                let dims_buf = uniform(bytemuck::bytes_of(&dims));
                let fp_buf = uniform(bytemuck::bytes_of(&fp));
                let buffers: [(u32, &wgpu::Buffer); 9] = [
                    (0, &dims_buf),
                    (1, &self.params),
                    (2, &self.tables),
                    (3, &self.arena),
                    (4, &work),
                    (5, &fstate),
                    (6, &self.scratch),
                    (7, &consts),
                    (8, &fp_buf),
                ];
                let bind = |k: &super::Kernel, grid: (u32, u32)| {
                    let entries: Vec<wgpu::BindGroupEntry> = buffers
                        .iter()
                        .map(|(b, buf)| wgpu::BindGroupEntry { binding: *b, resource: buf.as_entire_binding() })
                        .collect();
                    let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                        label: Some("fused"),
                        layout: &k.layout,
                        entries: &entries,
                    });
                    Dispatch { pipeline: k.pipeline.clone(), bind_group, grid }
                };
                (bind(&step, step_grid), bind(&unpermute, unpermute_grid))
            },
        )?;
        Ok(Some(Fused {
            vectors: plan.vectors.clone(),
            live_in: plan.live_in.clone(),
            step,
            unpermute,
            work,
            fstate,
            attempts_per_dispatch: max_attempts,
        }))
    }

    /// Writes the vectors of the resident fused program back to their own buffers (after
    /// undoing its slot swaps); afterwards no program is resident.
    fn flush(&mut self) -> Result<()> {
        let Some(p) = self.resident.take() else { return Ok(()) };
        let f = self.programs[p].fused.as_ref().expect("resident programs are fused");
        let slot_bytes = (self.layout.batch * self.layout.state_len) as u64 * self.real();
        let ctx = &*self.ctx;
        ctx.scoped(
            || "writing back the fused program's vectors".into(),
            || {
                let mut encoder = ctx.device.create_command_encoder(&Default::default());
                {
                    let mut pass = encoder.begin_compute_pass(&Default::default());
                    pass.set_pipeline(&f.unpermute.pipeline);
                    pass.set_bind_group(0, &f.unpermute.bind_group, &[]);
                    pass.dispatch_workgroups(f.unpermute.grid.0, f.unpermute.grid.1, 1);
                }
                for (k, v) in f.vectors.iter().enumerate() {
                    encoder.copy_buffer_to_buffer(&f.work, k as u64 * slot_bytes, &self.vectors[v.0], 0, slot_bytes);
                }
                ctx.queue.submit([encoder.finish()]);
            },
        )?;
        self.dispatches += 1;
        Ok(())
    }

    /// Makes fused program `p` resident: its carried vectors copied into its work buffer
    /// (slot map: identity).
    fn make_resident(&mut self, p: usize) -> Result<()> {
        if self.resident == Some(p) {
            return Ok(());
        }
        self.flush()?;
        let f = self.programs[p].fused.as_ref().expect("fused program");
        let l = self.layout;
        let nv = f.vectors.len();
        let identity: Vec<f64> = (0..l.batch).flat_map(|_| (0..nv).map(|k| k as f64)).collect();
        self.upload(&f.fstate, l.batch as u64, &identity);
        let slot_bytes = (l.batch * l.state_len) as u64 * self.real();
        let ctx = &*self.ctx;
        ctx.scoped(
            || "loading the fused program's vectors".into(),
            || {
                let mut encoder = ctx.device.create_command_encoder(&Default::default());
                for (k, v) in f.vectors.iter().enumerate() {
                    if f.live_in.contains(v) {
                        encoder.copy_buffer_to_buffer(
                            &self.vectors[v.0],
                            0,
                            &f.work,
                            k as u64 * slot_bytes,
                            slot_bytes,
                        );
                    }
                }
                ctx.queue.submit([encoder.finish()]);
            },
        )?;
        self.resident = Some(p);
        Ok(())
    }

    /// `repeats` attempts of fused program `p` for every member: dispatches of up to
    /// [`FUSED_MAX_ATTEMPTS`] attempts each, then a read-back of the attempts left, again
    /// until none are (more than one round only where the loop budget cut a dispatch).
    fn run_fused(&mut self, p: usize, repeats: usize) -> Result<()> {
        self.make_resident(p)?;
        let batch = self.layout.batch;
        let f = self.programs[p].fused.as_ref().expect("fused program");
        self.upload(&f.fstate, 0, &vec![repeats as f64; batch]);
        let mut todo = vec![repeats as f64; batch];
        let mut per_dispatch = f.attempts_per_dispatch.clamp(1, FUSED_MAX_ATTEMPTS);
        let mut count = repeats.div_ceil(per_dispatch);
        loop {
            let f = self.programs[p].fused.as_ref().expect("fused program");
            let ctx = &*self.ctx;
            ctx.scoped(
                || format!("running fused step kernel ({repeats} attempts)"),
                || {
                    let mut encoder = ctx
                        .device
                        .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("fused steps") });
                    {
                        let mut pass = encoder.begin_compute_pass(&Default::default());
                        pass.set_pipeline(&f.step.pipeline);
                        pass.set_bind_group(0, &f.step.bind_group, &[]);
                        for _ in 0..count {
                            pass.dispatch_workgroups(f.step.grid.0, f.step.grid.1, 1);
                        }
                    }
                    ctx.queue.submit([encoder.finish()]);
                },
            )?;
            self.dispatches += count as u64;
            let left = self.download(&f.fstate, 0, batch)?;
            let most = left.iter().fold(0.0f64, |a, &b| a.max(b));
            if debug_fused() {
                eprintln!("fused: {count} dispatches, attempts left: most {most}");
            }
            if most < 0.5 {
                return Ok(());
            }
            if todo.iter().zip(&left).all(|(before, after)| after >= before) {
                return Err(NeqkinError::Gpu {
                    context: "running fused step kernel".into(),
                    message: format!("no member advanced in {count} dispatches ({most} attempts left)"),
                });
            }
            // Attempts per dispatch where the budget cut: the fewest any unfinished member made.
            let slowest = todo
                .iter()
                .zip(&left)
                .filter(|(_, after)| **after >= 0.5)
                .map(|(before, after)| ((before - after) / count as f64).floor() as usize)
                .min()
                .unwrap_or(1)
                .max(1);
            per_dispatch = per_dispatch.min(slowest);
            self.programs[p].fused.as_mut().expect("fused program").attempts_per_dispatch = per_dispatch;
            count = (most as usize).div_ceil(per_dispatch);
            todo = left;
        }
    }

    fn grow_arena(&mut self) -> Result<()> {
        // Double, but no further than one storage binding holds; `storage` reports the
        // error when even one more array does not fit.
        let arrays = (self.arena_arrays * 2)
            .min(max_arena_arrays(&self.ctx, self.precision, self.layout.batch))
            .max(self.n_scalars + 1);
        let new = storage(&self.ctx, self.precision, "scalar arena", arrays * self.layout.batch)?;
        let used = (self.n_scalars * self.layout.batch) as u64 * self.real();
        let ctx = &*self.ctx;
        ctx.scoped(
            || "growing the scalar arena".into(),
            || {
                let mut encoder = ctx.device.create_command_encoder(&Default::default());
                if used > 0 {
                    encoder.copy_buffer_to_buffer(&self.arena, 0, &new, 0, used);
                }
                ctx.queue.submit([encoder.finish()]);
            },
        )?;
        self.arena = new;
        self.arena_arrays = arrays;
        self.generation += 1;
        Ok(())
    }
}

fn debug_fused() -> bool {
    std::env::var_os("NEQKIN_FUSED_DEBUG").is_some()
}

/// Scalar arrays of `batch` reals that fit in one storage binding.
fn max_arena_arrays(ctx: &GpuContext, precision: Precision, batch: usize) -> usize {
    (ctx.max_binding() / (GpuContext::real_size(precision) * batch.max(1) as u64)) as usize
}

fn check_at_least(field: &str, got: usize, want: usize) -> Result<()> {
    if got < want {
        return Err(NeqkinError::invalid(field, format!("length {got} < {want} from the batch layout")));
    }
    Ok(())
}

fn check_len(field: &str, got: usize, want: usize) -> Result<()> {
    if got != want {
        return Err(NeqkinError::invalid(field, format!("length {got} != {want} from the batch layout")));
    }
    Ok(())
}

/// A zeroed storage buffer of `len` reals (at least one), checked against the binding limit.
fn storage(ctx: &GpuContext, precision: Precision, label: &str, len: usize) -> Result<wgpu::Buffer> {
    let size = len.max(1) as u64 * GpuContext::real_size(precision);
    if size > ctx.max_binding() {
        return Err(NeqkinError::Gpu {
            context: format!("allocating {label}"),
            message: format!(
                "{size} bytes exceed the largest storage binding ({} bytes); use a smaller batch",
                ctx.max_binding()
            ),
        });
    }
    ctx.scoped(
        || format!("allocating {label} ({size} bytes)"),
        || {
            ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        },
    )
}

impl Backend for GpuBackend {
    fn new_vector(&mut self) -> Result<VecId> {
        let buffer = storage(&self.ctx, self.precision, "batch vector", self.layout.batch * self.layout.state_len)?;
        self.vectors.push(buffer);
        Ok(VecId(self.vectors.len() - 1))
    }

    fn new_scalars(&mut self) -> Result<ScalarId> {
        if self.n_scalars == self.arena_arrays {
            self.grow_arena()?;
        }
        self.n_scalars += 1;
        Ok(ScalarId(self.n_scalars - 1))
    }

    fn write_vector(&mut self, v: VecId, data: &[f64]) -> Result<()> {
        check_len("state", data.len(), self.layout.batch * self.layout.state_len)?;
        self.flush()?;
        self.upload(self.vector(v)?, 0, data);
        Ok(())
    }

    fn read_vector(&mut self, v: VecId) -> Result<Vec<f64>> {
        self.flush()?;
        self.download(self.vector(v)?, 0, self.layout.batch * self.layout.state_len)
    }

    fn write_scalars(&mut self, s: ScalarId, data: &[f64]) -> Result<()> {
        check_len("scalars", data.len(), self.layout.batch)?;
        let offset = self.scalar_offset(s)?;
        self.upload(&self.arena, u64::from(offset), data);
        Ok(())
    }

    fn read_scalars(&mut self, s: ScalarId) -> Result<Vec<f64>> {
        let offset = self.scalar_offset(s)?;
        self.download(&self.arena, u64::from(offset), self.layout.batch)
    }

    fn compile(&mut self, program: &StepProgram) -> Result<ProgramId> {
        let compiled = self.build(program)?;
        self.programs.push(compiled);
        Ok(ProgramId(self.programs.len() - 1))
    }

    fn run(&mut self, program: ProgramId, repeats: usize) -> Result<()> {
        let Some(compiled) = self.programs.get(program.0) else {
            return Err(NeqkinError::invalid("program", format!("unknown program {program:?}")));
        };
        if compiled.generation != self.generation {
            let source = compiled.program.clone();
            self.flush()?;
            let rebuilt = self.build(&source)?;
            self.programs[program.0] = rebuilt;
        }
        if self.programs[program.0].fused.is_some() {
            if repeats == 0 {
                return Ok(());
            }
            return self.run_fused(program.0, repeats);
        }
        self.flush()?;
        let dispatches = &self.programs[program.0].dispatches;
        if dispatches.is_empty() || repeats == 0 {
            return Ok(());
        }
        let ctx = &*self.ctx;
        let total = dispatches.len() * repeats;
        let mut sequence = (0..repeats).flat_map(|_| dispatches.iter());
        let mut recorded = 0;
        let mut previous: Option<wgpu::SubmissionIndex> = None;
        while recorded < total {
            let count = DISPATCHES_PER_SUBMIT.min(total - recorded);
            let index = ctx.scoped(
                || format!("running step program ({repeats} repeats)"),
                || {
                    let mut encoder = ctx
                        .device
                        .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("step program") });
                    {
                        let mut pass = encoder.begin_compute_pass(&Default::default());
                        for d in sequence.by_ref().take(count) {
                            pass.set_pipeline(&d.pipeline);
                            pass.set_bind_group(0, &d.bind_group, &[]);
                            pass.dispatch_workgroups(d.grid.0, d.grid.1, 1);
                        }
                    }
                    ctx.queue.submit([encoder.finish()])
                },
            )?;
            recorded += count;
            self.dispatches += count as u64;
            // Keep at most two command buffers in flight so huge runs do not queue
            // unbounded work.
            if let Some(prev) = previous.replace(index) {
                ctx.device
                    .poll(wgpu::PollType::Wait { submission_index: Some(prev), timeout: None })
                    .map_err(|e| NeqkinError::Gpu { context: "running step program".into(), message: e.to_string() })?;
            }
        }
        Ok(())
    }

    fn info(&self) -> BackendInfo {
        let a = self.ctx.info();
        BackendInfo {
            backend: "gpu".into(),
            adapter: a.name,
            api: a.api,
            precision: self.precision,
            threads: 0,
            dispatches: Some(self.dispatches),
            layout: Some(self.member_layout.to_string()),
        }
    }
}

/// Writes f64 data into `buffer` at `offset_reals`, converted to the kernel precision.
pub(crate) fn upload_reals(
    ctx: &GpuContext,
    precision: Precision,
    buffer: &wgpu::Buffer,
    offset_reals: u64,
    data: &[f64],
) {
    if data.is_empty() {
        return;
    }
    let offset = offset_reals * GpuContext::real_size(precision);
    match precision {
        Precision::F64 => ctx.queue.write_buffer(buffer, offset, bytemuck::cast_slice(data)),
        Precision::F32 => {
            let v: Vec<f32> = data.iter().map(|&x| x as f32).collect();
            ctx.queue.write_buffer(buffer, offset, bytemuck::cast_slice(&v));
        }
    }
}

/// Reads `len` reals of `buffer` from `offset_reals` back to the host as f64.
pub(crate) fn download_reals(
    ctx: &GpuContext,
    precision: Precision,
    buffer: &wgpu::Buffer,
    offset_reals: u64,
    len: usize,
) -> Result<Vec<f64>> {
    let size = len as u64 * GpuContext::real_size(precision);
    let staging = ctx.scoped(
        || format!("reading back {size} bytes"),
        || {
            let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("readback"),
                size,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let mut encoder = ctx.device.create_command_encoder(&Default::default());
            encoder.copy_buffer_to_buffer(buffer, offset_reals * GpuContext::real_size(precision), &staging, 0, size);
            ctx.queue.submit([encoder.finish()]);
            staging
        },
    )?;
    let (tx, rx) = std::sync::mpsc::channel();
    staging.map_async(wgpu::MapMode::Read, .., move |r| {
        let _ = tx.send(r);
    });
    wait(ctx, "readback")?;
    let gpu_err = |message: String| NeqkinError::Gpu { context: "mapping readback buffer".into(), message };
    rx.recv().map_err(|e| gpu_err(e.to_string()))?.map_err(|e| gpu_err(e.to_string()))?;
    let out = {
        let view = staging.get_mapped_range(..).map_err(|e| gpu_err(e.to_string()))?;
        match precision {
            Precision::F64 => bytemuck::pod_collect_to_vec::<u8, f64>(&view),
            Precision::F32 => bytemuck::pod_collect_to_vec::<u8, f32>(&view).into_iter().map(f64::from).collect(),
        }
    };
    staging.unmap();
    Ok(out)
}
