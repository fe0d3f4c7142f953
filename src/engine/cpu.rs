//! The CPU backend: the reference implementation of every engine op and the embedded
//! default where no GPU adapter exists. f64, multi-threaded over batch members with rayon.
//!
//! Each op here is the CPU twin of the kernel of the same name in
//! `shaders/engine/ops.wgsl`; both follow the semantics documented on
//! [`crate::engine::program::Op`], and `tests/gpu_ops.rs` compares them.

use std::sync::Arc;

use rayon::prelude::*;

use crate::engine::backend::{Backend, BackendInfo, Precision, ProgramId};
use crate::engine::model::BatchProblem;
use crate::engine::program::{status, ControlIds, ControlLaw, Op, ScalarId, StepProgram, ToleranceBlock, VecId};
use crate::{NeqkinError, Result};

/// CPU backend for one batch problem.
pub struct CpuBackend {
    problem: Arc<dyn BatchProblem>,
    vectors: Vec<Vec<f64>>,
    scalars: Vec<Vec<f64>>,
    scratch: Vec<f64>,
    programs: Vec<StepProgram>,
}

impl CpuBackend {
    /// Creates a backend holding `problem`.
    pub fn new(problem: Arc<dyn BatchProblem>) -> Self {
        let l = problem.layout();
        CpuBackend {
            scratch: vec![0.0; l.batch * l.scratch_len.max(1)],
            problem,
            vectors: Vec::new(),
            scalars: Vec::new(),
            programs: Vec::new(),
        }
    }

    fn exec(&mut self, op: &Op) {
        let l = self.problem.layout();
        let n = l.state_len;
        match op {
            Op::BeginStep { ctrl } => {
                let (t, h, t_end, st) = (
                    self.scalars[ctrl.t.0].clone(),
                    self.scalars[ctrl.h.0].clone(),
                    self.scalars[ctrl.t_end.0].clone(),
                    self.scalars[ctrl.status.0].clone(),
                );
                let h_max = self.scalars[ctrl.h_max.0].clone();
                let mut h_used = std::mem::take(&mut self.scalars[ctrl.h_used.0]);
                for m in 0..l.batch {
                    h_used[m] = begin_step(t[m], h[m], h_max[m], t_end[m], st[m]);
                }
                self.scalars[ctrl.h_used.0] = h_used;
            }
            Op::Rhs { t, y, dy } => {
                let problem = &*self.problem;
                let params = problem.params();
                let tables = problem.tables();
                let (pl, tl, ts, sl) = (l.params_len, l.table_len, l.table_stride, l.scratch_len.max(1));
                let tv = &self.scalars[t.0];
                let mut out = std::mem::take(&mut self.vectors[dy.0]);
                let yv = &self.vectors[y.0];
                out.par_chunks_mut(n).zip(self.scratch.par_chunks_mut(sl)).enumerate().for_each(|(m, (dym, scr))| {
                    problem.rhs_member(
                        m,
                        &params[m * pl..(m + 1) * pl],
                        &tables[m * ts..m * ts + tl],
                        tv[m],
                        &yv[m * n..(m + 1) * n],
                        dym,
                        scr,
                    )
                });
                self.vectors[dy.0] = out;
            }
            Op::Lincomb { out, plain, h, scaled } => {
                let mut o = std::mem::take(&mut self.vectors[out.0]);
                let hv = &self.scalars[h.0];
                let plain: Vec<(f64, &[f64])> = plain.iter().map(|(c, v)| (*c, &self.vectors[v.0][..])).collect();
                let scaled: Vec<(f64, &[f64])> = scaled.iter().map(|(c, v)| (*c, &self.vectors[v.0][..])).collect();
                o.par_chunks_mut(n).enumerate().for_each(|(m, om)| {
                    lincomb(om, m * n, &plain, hv[m], &scaled);
                });
                self.vectors[out.0] = o;
            }
            Op::ScalarAxpy { out, a, c, h } => {
                let r: Vec<f64> = (0..l.batch).map(|m| self.scalars[a.0][m] + c * self.scalars[h.0][m]).collect();
                self.scalars[out.0] = r;
            }
            Op::ErrorNorm { out, err, y, y_new, blocks } => {
                let (e, y0, y1) = (&self.vectors[err.0], &self.vectors[y.0], &self.vectors[y_new.0]);
                let r: Vec<f64> = (0..l.batch)
                    .into_par_iter()
                    .map(|m| {
                        let s = m * n..(m + 1) * n;
                        error_norm(&e[s.clone()], &y0[s.clone()], &y1[s], blocks)
                    })
                    .collect();
                self.scalars[out.0] = r;
            }
            Op::Control { ctrl, law } => {
                for m in 0..l.batch {
                    let mut c = MemberControl::load(&self.scalars, ctrl, m);
                    control(&mut c, law);
                    c.store(&mut self.scalars, ctrl, m);
                }
            }
            Op::Select { dst, src, flag } => {
                let mut d = std::mem::take(&mut self.vectors[dst.0]);
                let (s, f) = (&self.vectors[src.0], &self.scalars[flag.0]);
                d.par_chunks_mut(n).enumerate().for_each(|(m, dm)| {
                    if f[m] != 0.0 {
                        dm.copy_from_slice(&s[m * n..(m + 1) * n]);
                    }
                });
                self.vectors[dst.0] = d;
            }
            Op::SteadyCheck { ctrl, dy, range, tol } => {
                let d = &self.vectors[dy.0];
                for m in 0..l.batch {
                    let st = self.scalars[ctrl.status.0][m];
                    let acc = self.scalars[ctrl.accept.0][m];
                    let rms = rms(&d[m * n + range.0..m * n + range.1]);
                    self.scalars[ctrl.status.0][m] = steady_check(st, acc, rms, *tol);
                }
            }
        }
    }
}

/// Twin of `begin_step` in `shaders/engine/ops.wgsl`.
pub fn begin_step(t: f64, h: f64, h_max: f64, t_end: f64, st: f64) -> f64 {
    if st != status::RUNNING {
        return 0.0;
    }
    let remaining = t_end - t;
    if remaining <= 0.0 {
        return 0.0;
    }
    h.min(h_max).min(remaining)
}

/// Twin of `lincomb` in `shaders/engine/ops.wgsl`: one member's slice.
pub fn lincomb(out: &mut [f64], offset: usize, plain: &[(f64, &[f64])], h: f64, scaled: &[(f64, &[f64])]) {
    for (i, o) in out.iter_mut().enumerate() {
        let mut acc = 0.0;
        for (c, v) in plain {
            acc += c * v[offset + i];
        }
        let mut acc_h = 0.0;
        for (c, v) in scaled {
            acc_h += c * v[offset + i];
        }
        *o = acc + h * acc_h;
    }
}

/// Twin of `error_norm` in `shaders/engine/ops.wgsl`: max over blocks of each block's
/// weighted RMS. NaN/inf propagate (the controller treats them as a failed attempt).
pub fn error_norm(e: &[f64], y0: &[f64], y1: &[f64], blocks: &[ToleranceBlock]) -> f64 {
    let mut norm: f64 = 0.0;
    for b in blocks {
        let mut sum = 0.0;
        for i in b.start..b.end {
            let w = b.atol + b.rtol * y0[i].abs().max(y1[i].abs());
            let r = e[i] / w;
            sum += r * r;
        }
        let block = (sum / ((b.end - b.start).max(1) as f64)).sqrt();
        if !block.is_finite() {
            return f64::NAN;
        }
        norm = norm.max(block);
    }
    norm
}

/// Root mean square of a slice.
pub fn rms(v: &[f64]) -> f64 {
    (v.iter().map(|x| x * x).sum::<f64>() / (v.len().max(1) as f64)).sqrt()
}

/// Twin of `steady_check` in `shaders/engine/ops.wgsl`.
pub fn steady_check(st: f64, accept: f64, rms: f64, tol: f64) -> f64 {
    if st == status::RUNNING && accept != 0.0 && rms < tol {
        status::STEADY
    } else {
        st
    }
}

/// One member's controller scalars, as the `control` kernel sees them.
#[derive(Clone, Copy, Debug)]
pub struct MemberControl {
    /// Time.
    pub t: f64,
    /// Proposed step.
    pub h: f64,
    /// Stop time.
    pub t_end: f64,
    /// Status code.
    pub status: f64,
    /// Accepted flag (output).
    pub accept: f64,
    /// Accepted steps.
    pub n_accept: f64,
    /// Rejected steps.
    pub n_reject: f64,
    /// Step used in this attempt.
    pub h_used: f64,
    /// Error norm of this attempt.
    pub err: f64,
}

impl MemberControl {
    fn load(s: &[Vec<f64>], c: &ControlIds, m: usize) -> Self {
        MemberControl {
            t: s[c.t.0][m],
            h: s[c.h.0][m],
            t_end: s[c.t_end.0][m],
            status: s[c.status.0][m],
            accept: s[c.accept.0][m],
            n_accept: s[c.n_accept.0][m],
            n_reject: s[c.n_reject.0][m],
            h_used: s[c.h_used.0][m],
            err: s[c.err.0][m],
        }
    }
    fn store(&self, s: &mut [Vec<f64>], c: &ControlIds, m: usize) {
        s[c.t.0][m] = self.t;
        s[c.h.0][m] = self.h;
        s[c.status.0][m] = self.status;
        s[c.accept.0][m] = self.accept;
        s[c.n_accept.0][m] = self.n_accept;
        s[c.n_reject.0][m] = self.n_reject;
    }
}

/// Twin of `control` in `shaders/engine/ops.wgsl`: accept/reject, new step, status.
///
/// A step clipped to land on `t_end` sets `t = t_end` exactly, so output times are hit
/// without rounding drift. A non-finite error rejects the attempt with the smallest
/// factor; the member fails once its step falls below `h_min` (adaptive) or at once
/// (fixed step).
pub fn control(c: &mut MemberControl, law: &ControlLaw) {
    c.accept = 0.0;
    if c.status != status::RUNNING || c.h_used <= 0.0 {
        if c.status == status::RUNNING && c.t >= c.t_end {
            c.status = status::REACHED;
        }
        return;
    }
    let clipped = c.h_used >= c.t_end - c.t;
    match *law {
        ControlLaw::Fixed => {
            if !c.err.is_finite() {
                c.status = status::FAILED;
                return;
            }
            c.accept = 1.0;
            c.n_accept += 1.0;
            if clipped {
                c.t = c.t_end;
                c.status = status::REACHED;
            } else {
                c.t += c.h_used;
            }
        }
        ControlLaw::Adaptive { order, safety, min_factor, max_factor, h_min } => {
            // Departs from the GPU twin: `step_factor` in shaders/engine/ops.wgsl computes
            // err^exponent in f32 (f64 pow is not portable across drivers, and f32 is
            // plenty for a step-size factor), so `h` agrees to f32 rounding only.
            let exponent = -1.0 / (order as f64 + 1.0);
            if c.err.is_finite() && c.err <= 1.0 {
                let factor = if c.err > 0.0 {
                    (safety * c.err.powf(exponent)).clamp(min_factor, max_factor)
                } else {
                    max_factor
                };
                c.accept = 1.0;
                c.n_accept += 1.0;
                let proposed = c.h_used * factor;
                if clipped {
                    c.t = c.t_end;
                    c.status = status::REACHED;
                    c.h = c.h.max(proposed);
                } else {
                    c.t += c.h_used;
                    c.h = proposed;
                }
            } else {
                let factor =
                    if c.err.is_finite() { (safety * c.err.powf(exponent)).clamp(min_factor, 1.0) } else { min_factor };
                c.n_reject += 1.0;
                c.h = c.h_used * factor;
                if c.h < h_min {
                    c.status = status::FAILED;
                }
            }
        }
    }
}

impl Backend for CpuBackend {
    fn new_vector(&mut self) -> Result<VecId> {
        let l = self.problem.layout();
        self.vectors.push(vec![0.0; l.batch * l.state_len]);
        Ok(VecId(self.vectors.len() - 1))
    }
    fn new_scalars(&mut self) -> Result<ScalarId> {
        self.scalars.push(vec![0.0; self.problem.layout().batch]);
        Ok(ScalarId(self.scalars.len() - 1))
    }
    fn write_vector(&mut self, v: VecId, data: &[f64]) -> Result<()> {
        let dst = &mut self.vectors[v.0];
        if dst.len() != data.len() {
            return Err(NeqkinError::invalid("state", format!("length {} != {}", data.len(), dst.len())));
        }
        dst.copy_from_slice(data);
        Ok(())
    }
    fn read_vector(&mut self, v: VecId) -> Result<Vec<f64>> {
        Ok(self.vectors[v.0].clone())
    }
    fn write_scalars(&mut self, s: ScalarId, data: &[f64]) -> Result<()> {
        self.scalars[s.0].copy_from_slice(data);
        Ok(())
    }
    fn read_scalars(&mut self, s: ScalarId) -> Result<Vec<f64>> {
        Ok(self.scalars[s.0].clone())
    }
    fn compile(&mut self, program: &StepProgram) -> Result<ProgramId> {
        self.programs.push(program.clone());
        Ok(ProgramId(self.programs.len() - 1))
    }
    fn run(&mut self, program: ProgramId, repeats: usize) -> Result<()> {
        let ops = self.programs[program.0].ops.clone();
        for _ in 0..repeats {
            for op in &ops {
                self.exec(op);
            }
        }
        Ok(())
    }
    fn info(&self) -> BackendInfo {
        BackendInfo {
            backend: "cpu".into(),
            adapter: cpu_name(),
            api: "rayon".into(),
            precision: Precision::F64,
            threads: rayon::current_num_threads(),
        }
    }
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}
