//! Migdal-Eliashberg kinetics of a metal with equilibrium phonons (issue 4; supplement of
//! Yuzbashyan, Altshuler, Patra, "Instability of metals with respect to strong
//! electron-phonon interaction").
//!
//! Direct tasks (`solver.method = "direct"`, [`Model::evaluate`]): the equilibrium
//! self-energy and `Z0⁻¹` (`self_energy`), the threshold λc(T0) (`threshold`), the linear
//! stability eigenproblem (`stability`), the specific heat (`specific_heat`) and the
//! strong-coupling zeros of Eq 41 (`strong_coupling`). The time-stepping task `kinetic`
//! builds a [`BatchProblem`] for the nonlinear kinetic equation (29) with collision integral
//! (38) (see [`kinetic`]). Conventions (sign of Σ, units, the Eq 18/22 reading) are in
//! `docs/models/eliashberg.md` and in the submodules.

pub mod alpha2f;
pub mod kinetic;
pub mod polygamma;
pub mod selfenergy;
pub mod specific_heat;
pub mod stability;
pub mod threshold;

use crate::engine::model::{downcast_all, BatchProblem, Model, Observables, ParsedParams};
use crate::{NeqkinError, Result};
use alpha2f::Spectrum;
use serde::Deserialize;
use stability::Reading;
use std::sync::Arc;
use threshold::Units;

/// What to compute for one sweep point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Σ(E), Z0⁻¹(E) on an energy grid (Eq 15).
    SelfEnergy,
    /// λc(T0) from min Z0⁻¹ = 0 (Eq 24).
    Threshold,
    /// Generalised eigenproblem γAφ = Mφ (Eqs 17–23), optionally λc of the linear analysis.
    Stability,
    /// C_el from Eq 5 and Eqs 13/16; a stability report.
    SpecificHeat,
    /// Zeros of Eq 41.
    StrongCoupling,
    /// Nonlinear kinetic equation (29)+(38) (time stepping).
    Kinetic,
}

/// Equally spaced, equally coupled modes (Table I: start 40, step 1, count 21).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Comb {
    /// First frequency.
    pub start: f64,
    /// Spacing.
    pub step: f64,
    /// Number of modes.
    pub count: usize,
}

/// Parameters of one sweep point (`[params]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Task.
    pub task: Task,
    /// Einstein modes `[[ω_k, λ_k], …]` (input unit).
    #[serde(default)]
    pub modes: Option<Vec<[f64; 2]>>,
    /// Equally spaced modes sharing λ equally.
    #[serde(default)]
    pub comb: Option<Comb>,
    /// CSV file with rows `ω, α²F(ω)`, or a list of such files of which `table_index`
    /// picks one (so that a sweep over `table_index` sweeps the α²F shape).
    #[serde(default)]
    pub alpha2f_table: Option<TableSpec>,
    /// Index into a list `alpha2f_table` (sweepable; an integer ≥ 0).
    #[serde(default)]
    pub table_index: Option<f64>,
    /// Parametric α²F: "gaussian", "lorentzian" or "debye" (with `lambda`, `shape_center`,
    /// `shape_width`; every shape parameter is a plain number, so it can be a sweep axis).
    #[serde(default)]
    pub shape: Option<alpha2f::ShapeKind>,
    /// Peak position (Gaussian, Lorentzian) or Debye frequency ω_D (input unit).
    #[serde(default)]
    pub shape_center: Option<f64>,
    /// Peak width (Gaussian σ, Lorentzian half width; input unit).
    #[serde(default)]
    pub shape_width: Option<f64>,
    /// Largest sampled frequency (default: centre + 5σ Gaussian, centre + 20·width
    /// Lorentzian, ω_D Debye).
    #[serde(default)]
    pub shape_cutoff: Option<f64>,
    /// Sampling step of the shape (default: `grid_step` if given, else cutoff/400); must be
    /// a multiple of `grid_step` for the stability and kinetic tasks.
    #[serde(default)]
    pub shape_step: Option<f64>,
    /// Total coupling λ (rescales the λ_k; required with `comb`).
    #[serde(default)]
    pub lambda: Option<f64>,
    /// Temperature T0 (in `units`).
    pub temperature: f64,
    /// Energy unit of temperatures/energies: "g" (default, the paper's) or "input".
    #[serde(default = "default_units")]
    pub units: Units,
    /// Energy grid step ε in the input unit (stability, kinetic); mode frequencies must be
    /// multiples of it.
    #[serde(default)]
    pub grid_step: Option<f64>,
    /// Number of positive grid points L (default: cutoff 2ω_max + 25T).
    #[serde(default)]
    pub grid_points: Option<usize>,
    /// Eq 22 prefactor reading ("derived" default, or "literal").
    #[serde(default = "default_reading")]
    pub reading: Reading,
    /// Sign of the f′Σ̇ term in A: +1 (Eq 18, default) or −1 (Eq 22 with f0′ → |f0′|).
    #[serde(default = "default_sign")]
    pub offdiag_sign: f64,
    /// Stability: also find λc of the linear analysis (shape of the spectrum kept).
    #[serde(default)]
    pub find_lambda_c: bool,
    /// Stability: solve the eigenproblem at `lambda` (default true; false for threshold-only
    /// sweeps such as Table I).
    #[serde(default = "default_true")]
    pub solve_eigen: bool,
    /// Stability: number of eigenvectors to save at each end of the spectrum.
    #[serde(default = "default_nvec")]
    pub save_eigenvectors: usize,
    /// Energy window `[0, e_max]` (in `units`) for self_energy/strong_coupling outputs.
    #[serde(default)]
    pub e_max: Option<f64>,
    /// Kinetic: initial electron temperature T_in (in `units`).
    #[serde(default)]
    pub initial_temperature: Option<f64>,
    /// Kinetic (and the kinetic stability discretisation): principal-value rule of Σ[f],
    /// "product" = "product_linear" (piecewise-linear f, 3-point Σ′ and f′, 2nd order; the
    /// default), "product_cubic" (piecewise-cubic f, 5-point Σ′ and f′, 4th order; issue 10)
    /// or "drop" (skip the singular points, 1st order; for comparison).
    #[serde(default)]
    pub pv: Option<kinetic::PvRule>,
    /// Stability: which discretisation the eigenproblem γAφ = Mφ lives on: "analytic"
    /// (default; Eqs 17–23 with the analytic Z0⁻¹ of Eq 15, Table I's first column) or
    /// "kinetic" (the linearisation of the kinetic equation's own discretisation: A =
    /// diag(1 − Σ′) + diag(f0′)K, M = −∂I_ep/∂f / π; its rates are exactly those of the
    /// `kinetic` task).
    #[serde(default)]
    pub discretisation: Discretisation,
}

/// One α²F table or a list of them.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum TableSpec {
    /// One file.
    One(String),
    /// Several files; `table_index` picks one.
    Many(Vec<String>),
}

/// Discretisation of the linear stability problem.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Discretisation {
    /// Eqs 17–23 on the folded grid with the analytic Z0⁻¹ (Eq 15).
    #[default]
    Analytic,
    /// Linearisation of the kinetic task's discretisation (product-rule Σ[f], central
    /// differences, Eq 38 on the grid).
    Kinetic,
}

fn default_units() -> Units {
    Units::G
}
fn default_reading() -> Reading {
    Reading::Derived
}
fn default_sign() -> f64 {
    1.0
}
fn default_true() -> bool {
    true
}
fn default_nvec() -> usize {
    3
}

impl Params {
    /// Every key with its default, unit, range and meaning (`neqkin params eliashberg`).
    /// Energies in the unit chosen by `units` (g = sqrt(λ⟨ω²⟩) by default) or, for the
    /// spectrum and grid, in the input unit of the mode frequencies.
    #[rustfmt::skip]
    pub fn docs() -> Vec<crate::engine::model::ParamDoc> {
        use crate::engine::model::ParamDoc as P;
        use serde_json::json;
        let one_source = "exactly one of modes, comb, alpha2f_table, shape";
        vec![
            P::required("task", "—", "self_energy | threshold | stability | specific_heat | strong_coupling | kinetic", "what to compute (kinetic steps in time; the others need solver.method = \"direct\")"),
            P::unset("modes", one_source, "input", "[[ω_k, λ_k], …], ω_k > 0", "Einstein modes of α²F"),
            P::unset("comb", one_source, "input", "{ start > 0, step ≥ 0, count ≥ 1 }", "equally spaced modes sharing λ equally (Table I: 40, 1, 21)"),
            P::unset("alpha2f_table", one_source, "input", "CSV path or list of paths", "α²F(ω) table of rows ω, α²F; a list is indexed by table_index"),
            P::unset("table_index", "required with a list alpha2f_table", "—", "integer in 0..len", "which table of a list (sweepable)"),
            P::unset("shape", one_source, "—", "gaussian | lorentzian | debye", "parametric α²F (needs lambda, shape_center, shape_width)"),
            P::unset("shape_center", "required with shape", "input", "> 0", "peak position, or Debye frequency ω_D"),
            P::unset("shape_width", "required with gaussian/lorentzian shape", "input", "> 0", "Gaussian σ or Lorentzian half width"),
            P::unset("shape_cutoff", "centre + 5σ (gaussian), + 20·width (lorentzian), ω_D (debye)", "input", "> 0", "largest sampled frequency of the shape"),
            P::unset("shape_step", "grid_step, else cutoff/400", "input", "> 0, a multiple of grid_step (stability, kinetic)", "sampling step of the shape"),
            P::unset("lambda", "the spectrum's own total (required with comb or shape)", "—", "> 0", "total coupling λ (rescales the λ_k)"),
            P::required("temperature", "units", "> 0", "temperature T0 of the phonons and the equilibrium electrons"),
            P::new("units", json!("g"), "—", "g | input", "energy unit of temperatures and outputs: g = sqrt(λ⟨ω²⟩) or the input unit"),
            P::unset("grid_step", "required for stability and kinetic", "input", "> 0; mode frequencies multiples of it; kinetic: ≤ 2·min(T0, T_in)", "energy grid step ε"),
            P::unset("grid_points", "cutoff 2ω_max + 25T", "—", "≥ 4; kinetic: ≥ 10 and e^{−(L − ω_max/ε)/T} ≤ 1e-4", "number of positive grid points L"),
            P::new("reading", json!("derived"), "—", "derived | literal", "reading of the Eq 22 prefactor"),
            P::new("offdiag_sign", json!(1.0), "—", "+1 | −1", "sign of the f′Σ̇ term in A (+1 Eq 18, −1 Eq 22 with f0′ → |f0′|)"),
            P::new("find_lambda_c", json!(false), "—", "true | false", "stability: also find λc of the linear analysis"),
            P::new("solve_eigen", json!(true), "—", "true | false", "stability: solve the eigenproblem at lambda"),
            P::new("save_eigenvectors", json!(default_nvec()), "—", "≥ 0", "stability: eigenvectors saved at each end of the spectrum"),
            P::unset("e_max", "2ω_max + 10T (self_energy), 3 (strong_coupling)", "units", "> 0", "energy window [0, e_max] of self_energy/strong_coupling outputs"),
            P::unset("initial_temperature", "required for kinetic", "units", "> 0", "kinetic: initial electron temperature T_in"),
            P::unset("pv", "product", "—", "product | product_linear | product_cubic | drop", "kinetic and discretisation = \"kinetic\": principal-value rule of Σ[f] (product = product_linear: 2nd order; product_cubic: piecewise-cubic f with 5-point Σ′, f′, 4th order; drop: 1st order)"),
            P::new("discretisation", json!("analytic"), "—", "analytic | kinetic", "stability: Eqs 17–23 with analytic Z0⁻¹, or the kinetic task's linearisation"),
        ]
    }

    /// Parses and checks one parameter set.
    pub fn parse(v: &serde_json::Value) -> Result<Self> {
        if let Some(pv) = v.get("pv") {
            if !pv.as_str().is_some_and(|x| kinetic::PV_RULE_NAMES.contains(&x)) {
                return Err(NeqkinError::invalid(
                    "params.pv",
                    format!("must be one of {}, got {pv}", kinetic::PV_RULE_NAMES.join(", ")),
                ));
            }
        }
        let p: Params = crate::engine::model::parse_params(v)?;
        crate::engine::model::check_finite("params.temperature", p.temperature)?;
        if p.temperature <= 0.0 {
            return Err(NeqkinError::invalid("params.temperature", "must be > 0"));
        }
        let n_src = p.modes.is_some() as u8
            + p.comb.is_some() as u8
            + p.alpha2f_table.is_some() as u8
            + p.shape.is_some() as u8;
        if n_src != 1 {
            return Err(NeqkinError::invalid(
                "params.modes",
                "give exactly one of `modes`, `comb`, `alpha2f_table`, `shape`",
            ));
        }
        if let Some(kind) = p.shape {
            if p.lambda.is_none() {
                return Err(NeqkinError::invalid("params.lambda", "required with `shape`"));
            }
            match p.shape_center {
                Some(c) if c.is_finite() && c > 0.0 => {}
                _ => return Err(NeqkinError::invalid("params.shape_center", "required, finite and > 0")),
            }
            if kind != alpha2f::ShapeKind::Debye {
                match p.shape_width {
                    Some(w) if w.is_finite() && w > 0.0 => {}
                    _ => return Err(NeqkinError::invalid("params.shape_width", "required, finite and > 0")),
                }
            }
            for (k, v) in [("params.shape_cutoff", p.shape_cutoff), ("params.shape_step", p.shape_step)] {
                if let Some(x) = v {
                    if !(x.is_finite() && x > 0.0) {
                        return Err(NeqkinError::invalid(k, "must be finite and > 0"));
                    }
                }
            }
        } else {
            for (k, v) in [
                ("params.shape_center", p.shape_center),
                ("params.shape_width", p.shape_width),
                ("params.shape_cutoff", p.shape_cutoff),
                ("params.shape_step", p.shape_step),
            ] {
                if v.is_some() {
                    return Err(NeqkinError::invalid(k, "only with `shape`"));
                }
            }
        }
        match (&p.alpha2f_table, p.table_index) {
            (Some(TableSpec::Many(v)), Some(i)) => {
                if !(i.fract() == 0.0 && i >= 0.0 && (i as usize) < v.len()) {
                    return Err(NeqkinError::invalid(
                        "params.table_index",
                        format!("must be an integer in 0..{} (the list `alpha2f_table`), got {i}", v.len()),
                    ));
                }
            }
            (Some(TableSpec::Many(_)), None) => {
                return Err(NeqkinError::invalid("params.table_index", "required with a list `alpha2f_table`"))
            }
            (Some(TableSpec::One(_)) | None, Some(_)) => {
                return Err(NeqkinError::invalid("params.table_index", "only with a list `alpha2f_table`"))
            }
            _ => {}
        }
        if let Some(l) = p.lambda {
            if !(l.is_finite() && l > 0.0) {
                return Err(NeqkinError::invalid("params.lambda", "must be finite and > 0"));
            }
        }
        if p.comb.is_some() && p.lambda.is_none() && p.task != Task::Threshold {
            return Err(NeqkinError::invalid("params.lambda", "required with `comb`"));
        }
        if let Some(c) = &p.comb {
            if c.count == 0 || c.start.is_nan() || c.start <= 0.0 || c.step.is_nan() || c.step < 0.0 {
                return Err(NeqkinError::invalid("params.comb", "needs start > 0, step >= 0, count >= 1"));
            }
            if c.count > MAX_MODES {
                return Err(NeqkinError::invalid(
                    "params.comb.count",
                    format!("{} modes: too many (at most {MAX_MODES})", c.count),
                ));
            }
        }
        if let Some(m) = &p.modes {
            if m.len() > MAX_MODES {
                return Err(NeqkinError::invalid(
                    "params.modes",
                    format!("{} modes: too many (at most {MAX_MODES})", m.len()),
                ));
            }
        }
        if let Some(e) = p.grid_step {
            if !(e.is_finite() && e > 0.0) {
                return Err(NeqkinError::invalid("params.grid_step", "must be finite and > 0"));
            }
        }
        if p.offdiag_sign != 1.0 && p.offdiag_sign != -1.0 {
            return Err(NeqkinError::invalid("params.offdiag_sign", "must be +1 or -1"));
        }
        if let Some(n) = p.grid_points {
            if n < 4 {
                return Err(NeqkinError::invalid("params.grid_points", "must be >= 4"));
            }
        }
        if matches!(p.task, Task::Stability | Task::Kinetic) && p.grid_step.is_none() {
            return Err(NeqkinError::invalid("params.grid_step", "required for this task"));
        }
        if p.task == Task::Kinetic {
            match p.initial_temperature {
                Some(t) if t.is_finite() && t > 0.0 => {}
                _ => {
                    return Err(NeqkinError::invalid(
                        "params.initial_temperature",
                        "required (> 0) for the kinetic task",
                    ))
                }
            }
        }
        Ok(p)
    }

    /// The spectrum (input unit), with `lambda` applied if given.
    pub fn spectrum(&self) -> Result<Spectrum> {
        let s = if let Some(m) = &self.modes {
            let pairs: Vec<(f64, f64)> = m.iter().map(|x| (x[0], x[1])).collect();
            Spectrum::from_modes("params.modes", &pairs)?
        } else if let Some(c) = &self.comb {
            Spectrum::comb(c.start, c.step, c.count, 1.0)
        } else if let Some(kind) = self.shape {
            let c = self.shape_center.unwrap();
            let w = self.shape_width.unwrap_or(0.0);
            let cutoff = self.shape_cutoff.unwrap_or(match kind {
                alpha2f::ShapeKind::Gaussian => c + 5.0 * w,
                alpha2f::ShapeKind::Lorentzian => c + 20.0 * w,
                alpha2f::ShapeKind::Debye => c,
            });
            let step = self.shape_step.or(self.grid_step).unwrap_or(cutoff / 400.0);
            Spectrum::parametric(kind, c, w, cutoff, step, self.lambda.unwrap())?
        } else {
            let path = match self.alpha2f_table.as_ref().unwrap() {
                TableSpec::One(p) => p,
                TableSpec::Many(v) => &v[self.table_index.unwrap() as usize],
            };
            Spectrum::from_csv("params.alpha2f_table", std::path::Path::new(path))?
        };
        if s.total_lambda() <= 0.0 {
            return Err(NeqkinError::invalid("params.modes", "total coupling must be > 0"));
        }
        Ok(match self.lambda {
            Some(l) => s.with_lambda(l),
            None => s,
        })
    }

    /// Number of positive energy grid points L of a stability or kinetic point (`None` for
    /// the other tasks), from the spectrum without building anything of size L.
    pub fn grid_size(&self, s: &Spectrum) -> Option<usize> {
        let eps = self.grid_step?;
        match self.task {
            Task::Stability => {
                let (se, te, _) = stability::at_lambda(s, s.total_lambda(), self.temperature, self.units, eps);
                Some(self.grid_points.unwrap_or_else(|| stability::default_points(&se, te)))
            }
            Task::Kinetic => {
                let u = self.unit(s);
                let se = s.scaled(1.0 / eps);
                let t = self.temperature.max(self.initial_temperature.unwrap_or(0.0)) * u / eps;
                Some(self.grid_points.unwrap_or_else(|| stability::default_points(&se, t)))
            }
            _ => None,
        }
    }

    /// Size of the output unit in the input unit (g, or 1).
    pub fn unit(&self, s: &Spectrum) -> f64 {
        match self.units {
            Units::G => s.g(),
            Units::Input => 1.0,
        }
    }
}

/// Most phonon modes of one spectrum (`comb.count`, `modes`; shapes are capped alike).
pub const MAX_MODES: usize = 100_000;

/// The Migdal-Eliashberg model.
pub struct Eliashberg;

/// One point as [`Eliashberg`]'s `parse` leaves it: the checked parameters and the sizes
/// batch keys and footprints need, from the spectrum built once while checking (the
/// spectrum itself is not kept: a plan holds one of these per sweep point, and a batch
/// rebuilds it).
#[derive(Clone, Debug)]
pub struct ParsedPoint {
    /// The checked parameters.
    pub params: Params,
    /// Positive energy grid points L ([`Params::grid_size`]; `None` for tasks without a grid).
    pub grid_size: Option<usize>,
    /// Phonon modes of the spectrum.
    pub n_modes: usize,
}

fn params_of(points: &[ParsedParams]) -> Result<Vec<Params>> {
    Ok(downcast_all::<ParsedPoint>(points)?.into_iter().map(|p| p.params.clone()).collect())
}

impl Model for Eliashberg {
    fn name(&self) -> &'static str {
        "eliashberg"
    }
    fn parameters(&self) -> Vec<crate::engine::model::ParamDoc> {
        Params::docs()
    }
    fn starter(&self) -> crate::engine::model::Starter {
        use serde_json::json;
        crate::engine::model::Starter {
            what: "threshold coupling λc(T0) of Table I's 21-mode comb at a few temperatures (direct task)",
            solver: "method = \"direct\"",
            params: vec![
                ("task", json!("threshold")),
                ("comb", json!({ "start": 40.0, "step": 1.0, "count": 21 })),
                ("temperature", json!(0.18)),
            ],
            sweep: Some(("temperature", vec![0.18, 0.2, 0.22])),
        }
    }

    fn parse(&self, params: &serde_json::Value) -> Result<ParsedParams> {
        let p = Params::parse(params)?;
        let s = p.spectrum()?;
        if let Some(e) = p.grid_step {
            stability::mode_steps(&s.scaled(1.0 / e))?;
        }
        let (grid_size, n_modes) = (p.grid_size(&s), s.omega.len());
        Ok(ParsedParams::new(ParsedPoint { params: p, grid_size, n_modes }))
    }

    fn requires_direct(&self, params: &ParsedParams) -> Result<Option<bool>> {
        Ok(Some(params.downcast::<ParsedPoint>()?.params.task != Task::Kinetic))
    }

    fn batch_key(&self, params: &ParsedParams) -> Result<String> {
        let p = params.downcast::<ParsedPoint>()?;
        Ok(match p.params.task {
            Task::Kinetic => format!("L={} modes={}", p.grid_size.unwrap_or(0), p.n_modes),
            // Direct evaluations batch anything; the grid size only labels the group.
            Task::Stability => format!("L={}", p.grid_size.unwrap_or(0)),
            _ => String::new(),
        })
    }

    fn footprint(&self, params: &ParsedParams) -> Result<Option<crate::engine::model::Footprint>> {
        use crate::engine::model::Footprint;
        let pp = params.downcast::<ParsedPoint>()?;
        let p = &pp.params;
        let nm = pp.n_modes as u64;
        let l = pp.grid_size.unwrap_or(0) as u64;
        let sq = l.saturating_mul(l).saturating_mul(8);
        Ok(Some(match p.task {
            // The CPU RHS solves the stage's dense L×L system per member.
            Task::Kinetic => Footprint {
                state_len: l,
                params_len: kinetic::PARAMS_LEN as u64,
                table_len: kinetic::table_len(l as usize, nm as usize) as u64,
                table_shared: false,
                scratch_len: kinetic::SCRATCH_VECTORS as u64 * l,
                work_bytes: sq.saturating_mul(2),
                // f and delta_f.
                array_reals: 2 * l,
                static_array_reals: 0,
                jacobian_band: None,
                jacobian_pattern_band: None,
            },
            // Dense L×L matrices of the eigenproblem (two operators, factors, vectors).
            Task::Stability => Footprint {
                work_bytes: sq.saturating_mul(6),
                array_reals: (2 + 4 * p.save_eigenvectors as u64).saturating_mul(l),
                ..Footprint::default()
            },
            _ => Footprint { work_bytes: 8 * 16 * (nm + 4096), array_reals: 3 * 1001, ..Footprint::default() },
        }))
    }

    fn build(&self, points: &[ParsedParams]) -> Result<Arc<dyn BatchProblem>> {
        let ps = params_of(points)?;
        if let Some(p) = ps.iter().find(|p| p.task != Task::Kinetic) {
            return Err(NeqkinError::invalid(
                "params.task",
                format!("{:?} is a direct task: use solver.method = \"direct\"", p.task),
            ));
        }
        Ok(Arc::new(kinetic::KineticProblem::new(&ps)?))
    }

    fn evaluate(&self, points: &[ParsedParams]) -> Option<Result<Vec<Observables>>> {
        Some(points.iter().map(|v| evaluate_point(&v.downcast::<ParsedPoint>()?.params)).collect())
    }
}

fn scal(v: &mut Vec<(String, f64)>, k: &str, x: f64) {
    v.push((k.to_string(), x));
}

/// One direct computation.
pub fn evaluate_point(p: &Params) -> Result<Observables> {
    let s = p.spectrum()?;
    let mut o = Observables::default();
    let sc = &mut o.scalars;
    match p.task {
        Task::SelfEnergy | Task::SpecificHeat => {
            let u = p.unit(&s);
            let t = p.temperature * u;
            scal(sc, "lambda", s.total_lambda());
            scal(sc, "g_input_unit", s.g());
            scal(sc, "temperature_input_unit", t);
            scal(sc, "zinv_0", selfenergy::zinv(&s, t, 0.0));
            let (em, zm) = threshold::min_zinv(&s, t);
            scal(sc, "zinv_min", zm);
            scal(sc, "e_of_min", em / u);
            if p.task == Task::SelfEnergy {
                let emax = p.e_max.map(|e| e * u).unwrap_or(2.0 * s.omega_max() + 10.0 * t);
                let n = 1001;
                let e: Vec<f64> = (0..n).map(|i| emax * i as f64 / (n - 1) as f64).collect();
                o.arrays.push(("sigma".into(), e.iter().map(|&x| selfenergy::sigma(&s, t, x) / u).collect()));
                o.arrays.push(("zinv".into(), e.iter().map(|&x| selfenergy::zinv(&s, t, x)).collect()));
                o.arrays.push(("energy".into(), e.iter().map(|x| x / u).collect()));
            } else {
                let free = 2.0 * std::f64::consts::PI.powi(2) * t / 3.0;
                let c5 = specific_heat::c_el_prange_kadanoff(&s, t, 4000);
                let c16 = specific_heat::c_el_lee_rainer(&s, t);
                scal(sc, "c_el_eq5_over_free", c5 / free);
                scal(sc, "c_el_eq16_over_free", c16 / free);
                scal(sc, "c_el_eq16", c16);
                scal(sc, "stable", ((zm > 0.0) && (c16 > 0.0)) as i32 as f64);
            }
        }
        Task::Threshold => {
            let th = threshold::lambda_c(&s, p.temperature, p.units)?;
            scal(sc, "lambda_c", th.lambda_c);
            scal(sc, "e_star", th.e_star);
            scal(sc, "g_input_unit", th.g);
            scal(sc, "temperature_input_unit", th.t_input);
        }
        Task::StrongCoupling => {
            let t = p.temperature; // in units of g
            let emax = p.e_max.unwrap_or(3.0);
            let z = selfenergy::zeros(&|e| selfenergy::zinv_strong(1.0, t, e), emax, 3000);
            scal(sc, "n_zeros", z.len() as f64);
            for (i, x) in z.iter().enumerate() {
                scal(sc, &format!("zero_{}", i + 1), *x);
            }
            let (em, zm) = selfenergy::zinv_min(&|e| selfenergy::zinv_strong(1.0, t, e), emax, 3000);
            scal(sc, "zinv_min", zm);
            scal(sc, "e_of_min", em);
        }
        Task::Stability => {
            let eps = p.grid_step.unwrap();
            let lambda = s.total_lambda();
            if p.find_lambda_c {
                let th = threshold::lambda_c(&s, p.temperature, p.units)?;
                let (lc, n) = stability::lambda_c_linear(
                    &s,
                    p.temperature,
                    p.units,
                    eps,
                    p.grid_points,
                    p.reading,
                    p.offdiag_sign,
                    th.lambda_c,
                )?;
                scal(sc, "lambda_c_zinv", th.lambda_c);
                scal(sc, "lambda_c_linear", lc);
                scal(sc, "relative_difference", (lc - th.lambda_c) / lc);
                scal(sc, "grid_points", n as f64);
                if p.discretisation == Discretisation::Kinetic {
                    let (lk, _) = kinetic::lambda_c_kinetic(p, th.lambda_c)?;
                    scal(sc, "lambda_c_kinetic", lk);
                }
            }
            if !p.solve_eigen {
                return Ok(o);
            }
            let (se, te, eo) = stability::at_lambda(&s, lambda, p.temperature, p.units, eps);
            let n = p.grid_points.unwrap_or_else(|| stability::default_points(&se, te));
            // γ (units of ε, ascending) and a way to get eigenvector `i`.
            let (gamma_eps, vector): (Vec<f64>, Box<dyn Fn(usize) -> Vec<f64>>) = match p.discretisation {
                Discretisation::Analytic => {
                    let opts = stability::StabilityOptions {
                        points: n,
                        reading: p.reading,
                        offdiag_sign: p.offdiag_sign,
                        eps_out: eo,
                    };
                    let sol = stability::solve(&se, te, &opts)?;
                    let phi = sol.phi;
                    (sol.gamma, Box::new(move |i| phi.col(i).iter().cloned().collect()))
                }
                Discretisation::Kinetic => {
                    let mut kp = p.clone();
                    kp.task = Task::Kinetic;
                    kp.initial_temperature = Some(p.temperature);
                    kp.grid_points = Some(n);
                    let prob = kinetic::KineticProblem::new(&[kp])?;
                    let (a, m) = prob.linearisation(0);
                    let ks = kinetic::kinetic_spectrum(n, &a, &m)?;
                    scal(sc, "max_imag_relative", ks.max_imag_rel);
                    let g = ks.gamma.clone();
                    (
                        ks.gamma,
                        Box::new(move |i| {
                            kinetic::kinetic_eigenvector(n, &a, &m, g[i]).unwrap_or_else(|| vec![f64::NAN; n])
                        }),
                    )
                }
            };
            let gam: Vec<f64> = gamma_eps.iter().map(|g| g * eo).collect();
            let neg: Vec<usize> = (0..gam.len()).filter(|&i| gam[i] < 0.0).collect();
            let pos: Vec<usize> = (0..gam.len()).filter(|&i| gam[i] > 0.0).collect();
            scal(sc, "lambda", lambda);
            scal(sc, "grid_step_out_unit", eo);
            scal(sc, "cutoff_out_unit", n as f64 * eo);
            scal(sc, "n_negative", neg.len() as f64);
            scal(sc, "gamma_min_positive", pos.first().map(|&i| gam[i]).unwrap_or(f64::NAN));
            scal(sc, "gamma_most_negative", neg.first().map(|&i| gam[i]).unwrap_or(f64::NAN));
            scal(sc, "gamma_least_negative", neg.last().map(|&i| gam[i]).unwrap_or(f64::NAN));
            o.arrays.push(("energy".into(), (1..=n).map(|i| i as f64 * eo).collect()));
            o.arrays.push(("gamma".into(), gam.clone()));
            let k = p.save_eigenvectors;
            let mut save = |name: String, idx: usize| {
                o.arrays.push((name, vector(idx)));
            };
            // stable: the k smallest positive γ and the k largest; unstable: the k
            // least negative and the k most negative.
            for (j, &i) in pos.iter().take(k).enumerate() {
                save(format!("phi_stable_smallest_{}", j + 1), i);
            }
            for (j, &i) in pos.iter().rev().take(k).enumerate() {
                save(format!("phi_stable_largest_{}", j + 1), i);
            }
            for (j, &i) in neg.iter().rev().take(k).enumerate() {
                save(format!("phi_unstable_smallest_{}", j + 1), i);
            }
            for (j, &i) in neg.iter().take(k).enumerate() {
                save(format!("phi_unstable_largest_{}", j + 1), i);
            }
        }
        Task::Kinetic => {
            return Err(NeqkinError::invalid(
                "params.task",
                "kinetic is time stepping: use solver.method = dopri5/rkc/rk4",
            ))
        }
    }
    Ok(o)
}
