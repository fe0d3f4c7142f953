//! User-facing parameters of the photoexcited-metal model, their defaults and their checks.
//!
//! A parameter set arrives as a JSON object (one sweep point of the config's `[params]`
//! table). It is parsed with serde (`deny_unknown_fields`) through
//! [`crate::engine::model::parse_params`], so every type error names `params.<key>`.
//!
//! Units: energies in units of the band width `W = band_width` (default 1), rates in units
//! of `coupling_rate` (Γ_eph, default 1), times in `1/Γ_eph`.

use serde::Deserialize;

use crate::{NeqkinError, Result};

/// Electronic density of states of the band.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum DosKind {
    /// Trial DoS of Figs 1-3: semicircle on `[-W/2, W/2]` (increasing from the lower edge
    /// to mid band), with the Bethe-lattice velocity `v² = (W/2)² - ε²`.
    Semicircular,
    /// 1D band of supplement Eq (54), cell-averaged (integrable edge singularities) and
    /// optionally capped by `dos_cap`.
    OneDimensional,
    /// K3C60-like three-orbital p band of supplement Sec. I, sampled over the Brillouin zone.
    PBand,
    /// User CSV table `ε, D, v²` (`dos_table`), rescaled to `[-W/2, W/2]`.
    Table,
}

/// Energy dependence of the transport time τ_tr (main text footnote 19).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// τ_tr constant: σ̃ ∝ v² D.
    Constant,
    /// Impurity scattering τ_tr ∝ 1/D: σ̃ ∝ v².
    Impurity,
    /// Hard-sphere-like `v τ_tr` constant: σ̃ ∝ v D.
    ConstantVTau,
    /// `v² τ_tr` constant (used for Fig 2): σ̃ ∝ D.
    ConstantV2Tau,
}

fn d_band_width() -> f64 {
    1.0
}
fn d_dos() -> DosKind {
    DosKind::Semicircular
}
fn d_k_points() -> usize {
    64
}
fn d_smoothing() -> f64 {
    1.5
}
fn d_hopping() -> [f64; 3] {
    [-0.100, 0.030, 0.200]
}
fn d_transport() -> Transport {
    Transport::ConstantV2Tau
}
fn d_grid_points() -> usize {
    400
}
fn d_temperature() -> f64 {
    0.003
}
fn d_phonon_frequency() -> f64 {
    0.5
}
fn d_one() -> f64 {
    1.0
}
fn d_pulse() -> f64 {
    0.3
}
fn d_kappa() -> f64 {
    100.0
}
fn d_seed() -> f64 {
    1e-8
}

/// One resolved parameter set of the photoexcited model (all defaults filled in).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PhotoexcitedParams {
    /// Band width `W` (energy unit). Default 1.
    #[serde(default = "d_band_width")]
    pub band_width: f64,
    /// Density of states. Default `semicircular`.
    #[serde(default = "d_dos")]
    pub dos: DosKind,
    /// CSV file `ε, D, v²` (one row per line, `#` comments) for `dos = "table"`.
    #[serde(default)]
    pub dos_table: Option<String>,
    /// Upper cap on D (in units of 1/W) applied before normalisation, for DoS with
    /// edge singularities. Default: none (cell averages are already finite).
    #[serde(default)]
    pub dos_cap: Option<f64>,
    /// Brillouin-zone sampling `n_k` per direction (`n_k³` points) for `dos = "p_band"`.
    #[serde(default = "d_k_points")]
    pub k_points: usize,
    /// Gaussian smoothing (standard deviation, in cells) of the sampled p-band histogram
    /// (D and v²), against sampling noise. 0 = none. Default 1.5.
    #[serde(default = "d_smoothing")]
    pub p_band_smoothing: f64,
    /// Hoppings `[t1, t2, t3]` of the p band (any energy unit; the band is rescaled to W).
    /// Default `[-0.1, 0.03, 0.2]` (eV).
    #[serde(default = "d_hopping")]
    pub p_band_hopping: [f64; 3],
    /// Transport-time model. Default `constant_v2_tau`.
    #[serde(default = "d_transport")]
    pub transport: Transport,
    /// Number of energy cells N. Default 400.
    #[serde(default = "d_grid_points")]
    pub grid_points: usize,
    /// Bath / initial temperature T. Default 0.003.
    #[serde(default = "d_temperature")]
    pub temperature: f64,
    /// Chemical potential μ of the initial state (excludes `filling`).
    #[serde(default)]
    pub chemical_potential: Option<f64>,
    /// Fraction of the band filled in the initial state (default 0.5 if μ is not given).
    #[serde(default)]
    pub filling: Option<f64>,
    /// Phonon frequency ω_p. Default 0.5.
    #[serde(default = "d_phonon_frequency")]
    pub phonon_frequency: f64,
    /// Gaussian width δω of a dispersive phonon (Eq 52). Default 0 (dispersionless).
    #[serde(default)]
    pub phonon_width: f64,
    /// Electron-phonon rate Γ_eph. Default 1 (sets the time unit).
    #[serde(default = "d_one")]
    pub coupling_rate: f64,
    /// Inelastic (bath) rate Γ_in of Eq (6). Default 0.
    #[serde(default)]
    pub inelastic_rate: f64,
    /// Fixed non-equilibrium phonon occupation ζ, switched on at t = 0 (Figs 1, 2). When
    /// set, ζ does not evolve and there is no pump.
    #[serde(default)]
    pub zeta: Option<f64>,
    /// Initial ζ when ζ evolves. Default 0.
    #[serde(default)]
    pub zeta_initial: f64,
    /// Pump strength ζ0: `I_p(t) = ζ0/τ_pulse · exp(-t/τ_pulse)`. Default 0.
    #[serde(default)]
    pub pump_strength: f64,
    /// Pulse duration τ_pulse. Default 0.3.
    #[serde(default = "d_pulse")]
    pub pulse_duration: f64,
    /// Phonon lifetime τ_ph (anharmonic decay). Default: infinite.
    #[serde(default)]
    pub phonon_lifetime: Option<f64>,
    /// Applied dc field, in units where `E² v_F² τ_tr(μ)` (e = 1) is measured in
    /// `W² Γ_eph`. Default 0.
    #[serde(default)]
    pub electric_field: f64,
    /// Evolve the internal field E*(t) of the σ < 0 instability (Fig 3b): Maxwell's
    /// `dE/dt = -4πσE` gives `d(E*²)/dt = -2κ (σ/σ0)(E*² + field_seed)`.
    #[serde(default)]
    pub self_consistent_field: bool,
    /// κ = 4πσ0, the growth rate of the internal field per unit of −σ/σ0 (in Γ_eph;
    /// physically ≫ Γ_eph). Default 100.
    #[serde(default = "d_kappa")]
    pub field_growth_rate: f64,
    /// Seed E² of the internal field (charge fluctuations), field units. Default 1e-8.
    #[serde(default = "d_seed")]
    pub field_seed: f64,
}

/// Keys a parameter set may hold (for error messages and docs).
pub const KNOWN_KEYS: &[&str] = &[
    "band_width",
    "dos",
    "dos_table",
    "dos_cap",
    "k_points",
    "p_band_hopping",
    "p_band_smoothing",
    "transport",
    "grid_points",
    "temperature",
    "chemical_potential",
    "filling",
    "phonon_frequency",
    "phonon_width",
    "coupling_rate",
    "inelastic_rate",
    "zeta",
    "zeta_initial",
    "pump_strength",
    "pulse_duration",
    "phonon_lifetime",
    "electric_field",
    "self_consistent_field",
    "field_growth_rate",
    "field_seed",
];

fn field(key: &str) -> String {
    format!("params.{key}")
}

fn bad(key: &str, reason: impl Into<String>) -> NeqkinError {
    NeqkinError::invalid(field(key), reason)
}

impl PhotoexcitedParams {
    /// Parses and checks one parameter set; errors name `params.<key>`.
    pub fn from_json(value: &serde_json::Value) -> Result<Self> {
        let p: Self = crate::engine::model::parse_params(value)?;
        p.check()?;
        Ok(p)
    }

    /// Cell width `h = W / N`.
    pub fn cell_width(&self) -> f64 {
        self.band_width / self.grid_points as f64
    }

    /// True when ζ is a fixed parameter (Figs 1, 2) rather than a dynamical variable.
    pub fn zeta_fixed(&self) -> bool {
        self.zeta.is_some()
    }

    /// Range checks (called by [`Self::from_json`]).
    pub fn check(&self) -> Result<()> {
        let finite = |k: &str, v: f64| -> Result<f64> {
            if v.is_finite() {
                Ok(v)
            } else {
                Err(bad(k, format!("must be a finite number, got {v}")))
            }
        };
        let positive = |k: &str, v: f64| -> Result<()> {
            if finite(k, v)? <= 0.0 {
                Err(bad(k, format!("must be > 0, got {v}")))
            } else {
                Ok(())
            }
        };
        let non_negative = |k: &str, v: f64| -> Result<()> {
            if finite(k, v)? < 0.0 {
                Err(bad(k, format!("must be >= 0, got {v}")))
            } else {
                Ok(())
            }
        };
        positive("band_width", self.band_width)?;
        if self.grid_points < 16 {
            return Err(bad("grid_points", format!("must be at least 16, got {}", self.grid_points)));
        }
        if self.grid_points > 1 << 20 {
            return Err(bad("grid_points", format!("must be at most {}, got {}", 1 << 20, self.grid_points)));
        }
        let w = self.band_width;
        let h = self.cell_width();
        positive("temperature", self.temperature)?;
        positive("phonon_frequency", self.phonon_frequency)?;
        if self.phonon_frequency >= w {
            return Err(bad(
                "phonon_frequency",
                format!("must be below the band width {w}, got {}", self.phonon_frequency),
            ));
        }
        if self.phonon_frequency < 2.0 * h {
            return Err(bad(
                "phonon_frequency",
                format!(
                    "grid too coarse: need phonon_frequency >= 2 h = {} (h = band_width / grid_points); raise params.grid_points",
                    2.0 * h
                ),
            ));
        }
        non_negative("phonon_width", self.phonon_width)?;
        if self.phonon_width > 0.0 {
            if self.phonon_width < h {
                return Err(bad(
                    "phonon_width",
                    format!("not resolved: need phonon_width >= h = {h}; raise params.grid_points"),
                ));
            }
            if self.phonon_frequency - 4.0 * self.phonon_width < h {
                return Err(bad(
                    "phonon_width",
                    "the phonon band (phonon_frequency ± 4 phonon_width) must stay above one grid cell",
                ));
            }
            if self.phonon_frequency + 4.0 * self.phonon_width >= w {
                return Err(bad(
                    "phonon_width",
                    "the phonon band (phonon_frequency + 4 phonon_width) must stay below the band width",
                ));
            }
        }
        match (self.chemical_potential, self.filling) {
            (Some(_), Some(_)) => {
                return Err(bad("chemical_potential", "give either chemical_potential or filling, not both"));
            }
            (Some(mu), None) => {
                finite("chemical_potential", mu)?;
                if mu.abs() >= 0.5 * w {
                    return Err(bad(
                        "chemical_potential",
                        format!("must lie inside the band (-{0}, {0}), got {mu}", 0.5 * w),
                    ));
                }
            }
            (None, Some(n)) => {
                if !(finite("filling", n)? > 0.0 && n < 1.0) {
                    return Err(bad("filling", format!("must lie in (0, 1), got {n}")));
                }
            }
            (None, None) => {}
        }
        non_negative("coupling_rate", self.coupling_rate)?;
        non_negative("inelastic_rate", self.inelastic_rate)?;
        if let Some(z) = self.zeta {
            non_negative("zeta", z)?;
            if self.pump_strength != 0.0 {
                return Err(bad(
                    "pump_strength",
                    "a pump needs a dynamical zeta: remove params.zeta (use zeta_initial)",
                ));
            }
            if self.zeta_initial != 0.0 {
                return Err(bad("zeta_initial", "params.zeta fixes zeta; zeta_initial is for a dynamical zeta"));
            }
        }
        non_negative("zeta_initial", self.zeta_initial)?;
        non_negative("pump_strength", self.pump_strength)?;
        positive("pulse_duration", self.pulse_duration)?;
        if let Some(tp) = self.phonon_lifetime {
            positive("phonon_lifetime", tp)?;
        }
        non_negative("electric_field", self.electric_field)?;
        positive("field_growth_rate", self.field_growth_rate)?;
        positive("field_seed", self.field_seed)?;
        match (self.dos, &self.dos_table) {
            (DosKind::Table, None) => return Err(bad("dos_table", "dos = \"table\" needs dos_table = \"file.csv\"")),
            (DosKind::Table, Some(_)) => {}
            (_, Some(_)) => return Err(bad("dos_table", "only used with dos = \"table\"")),
            _ => {}
        }
        if let Some(c) = self.dos_cap {
            positive("dos_cap", c)?;
            if c <= 1.0 {
                return Err(bad("dos_cap", format!("must exceed the average DoS 1 (units of 1/W), got {c}")));
            }
        }
        if self.dos == DosKind::PBand && !(4..=400).contains(&self.k_points) {
            return Err(bad("k_points", format!("must lie in [4, 400], got {}", self.k_points)));
        }
        if self.p_band_smoothing.is_nan() || self.p_band_smoothing < 0.0 || self.p_band_smoothing > 50.0 {
            return Err(bad("p_band_smoothing", format!("must lie in [0, 50] cells, got {}", self.p_band_smoothing)));
        }
        for (i, t) in self.p_band_hopping.iter().enumerate() {
            finite("p_band_hopping", *t).map_err(|_| bad("p_band_hopping", format!("entry {i} is not finite")))?;
        }
        Ok(())
    }
}

/// Every key of [`PhotoexcitedParams`] with its default, unit, range and meaning
/// (`neqkin params photoexcited`). Units: energies in W, rates in Γ_eph, times in 1/Γ_eph.
#[rustfmt::skip]
pub fn docs() -> Vec<crate::engine::model::ParamDoc> {
    use crate::engine::model::ParamDoc as P;
    use serde_json::json;
    vec![
        P::new("band_width", json!(d_band_width()), "W", "> 0", "band width W, the energy unit"),
        P::new("dos", json!("semicircular"), "—", "semicircular | one_dimensional | p_band | table", "electronic density of states of the band"),
        P::unset("dos_table", "no table", "—", "CSV path; only with dos = \"table\"", "file of rows ε, D, v² rescaled to [-W/2, W/2]"),
        P::unset("dos_cap", "no cap", "1/W", "> 1", "cap on D before normalisation, for DoS with edge singularities"),
        P::new("k_points", json!(d_k_points()), "—", "4..=400 (dos = \"p_band\")", "Brillouin-zone sampling n_k per direction (n_k³ points) of the p band"),
        P::new("p_band_hopping", json!(d_hopping()), "any (rescaled to W)", "3 finite numbers", "hoppings [t1, t2, t3] of the K3C60-like p band"),
        P::new("p_band_smoothing", json!(d_smoothing()), "cells", "[0, 50]", "Gaussian smoothing of the sampled p-band histogram against sampling noise"),
        P::new("transport", json!("constant_v2_tau"), "—", "constant | impurity | constant_v_tau | constant_v2_tau", "energy dependence of the transport time τ_tr (footnote 19)"),
        P::new("grid_points", json!(d_grid_points()), "—", "16..=1048576", "number of energy cells N (cell width h = W/N)"),
        P::new("temperature", json!(d_temperature()), "W", "> 0", "bath and initial electron temperature T"),
        P::unset("chemical_potential", "from filling", "W", "(-W/2, W/2); excludes filling", "chemical potential μ of the initial Fermi function"),
        P::unset("filling", "0.5 when chemical_potential is unset", "—", "(0, 1); excludes chemical_potential", "fraction of the band filled initially"),
        P::new("phonon_frequency", json!(d_phonon_frequency()), "W", "[2h, W)", "optical phonon frequency ω_p"),
        P::new("phonon_width", json!(0.0), "W", "0 or ≥ h, band ω_p ± 4δω inside (h, W)", "Gaussian width δω of a dispersive phonon (Eq 52)"),
        P::new("coupling_rate", json!(d_one()), "Γ_eph", "≥ 0", "electron-phonon rate Γ_eph (sets the time unit)"),
        P::new("inelastic_rate", json!(0.0), "Γ_eph", "≥ 0", "inelastic bath rate Γ_in of Eq 6"),
        P::unset("zeta", "ζ evolves (zeta_initial, pump)", "—", "≥ 0; excludes pump_strength and zeta_initial", "fixed phonon occupation ζ switched on at t = 0 (Figs 1, 2)"),
        P::new("zeta_initial", json!(0.0), "—", "≥ 0", "initial ζ when ζ evolves"),
        P::new("pump_strength", json!(0.0), "—", "≥ 0", "pump ζ0: I_p(t) = ζ0/τ_pulse · exp(-t/τ_pulse)"),
        P::new("pulse_duration", json!(d_pulse()), "1/Γ_eph", "> 0", "pump pulse duration τ_pulse"),
        P::unset("phonon_lifetime", "infinite", "1/Γ_eph", "> 0", "phonon lifetime τ_ph (anharmonic decay of ζ)"),
        P::new("electric_field", json!(0.0), "W·sqrt(Γ_eph/(v_F² τ_tr))", "≥ 0", "applied dc field E (Joule heating E² v_F² τ_tr in W² Γ_eph)"),
        P::new("self_consistent_field", json!(false), "—", "true | false", "evolve the internal field E*(t) of the σ < 0 instability (Fig 3b)"),
        P::new("field_growth_rate", json!(d_kappa()), "Γ_eph", "> 0", "κ = 4πσ0, growth rate of E*² per unit of −σ/σ0"),
        P::new("field_seed", json!(d_seed()), "field²", "> 0", "seed E² of the internal field (charge fluctuations)"),
    ]
}
