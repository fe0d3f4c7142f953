//! Which picture a run gets: the config's `[plot]` panels, or the standard picture of its
//! model chosen from the sweep shape; and the axis labels (symbol and unit) of every
//! quantity the models write.

use crate::config::raw::{PlotKind, PlotOutputs, RawPlot};

use super::data::RunData;

fn panel(kind: PlotKind, x: Option<&str>, y: &[&str], hue: Option<&str>) -> RawPlot {
    RawPlot {
        kind,
        x: x.map(str::to_string),
        y: y.iter().map(|s| s.to_string()).collect(),
        hue: hue.map(str::to_string),
        reference: Default::default(),
        title: None,
        log_x: false,
        log_y: false,
        outputs: None,
        x_range: None,
    }
}

fn with_reference(mut p: RawPlot, y: &str, reference: &str) -> RawPlot {
    p.reference.insert(y.to_string(), reference.to_string());
    p
}

fn titled(mut p: RawPlot, title: &str) -> RawPlot {
    p.title = Some(title.to_string());
    p
}

/// The panels to draw: the config's own, else the model's standard picture.
pub fn panels(run: &RunData) -> Vec<RawPlot> {
    if !run.config.plot.is_empty() {
        return run.config.plot.clone();
    }
    default_panels(run)
}

/// The standard picture of a run, from its model and sweep shape.
pub fn default_panels(run: &RunData) -> Vec<RawPlot> {
    // The axis a sweep plot runs along: the longest one (ties: the first); the next
    // longest tells curves apart.
    let mut by_len: Vec<&crate::config::SweepAxis> = run.axes.iter().collect();
    by_len.sort_by_key(|a| std::cmp::Reverse(a.values.len()));
    let x = by_len.first().filter(|a| a.values.len() > 3).map(|a| a.name.as_str());
    let hue = by_len.get(1).map(|a| a.name.as_str());
    let many_outputs = run.output_times.len() > 1;
    let first = run.points().first().copied().unwrap_or(0);
    let has = |name: &str| run.column(name).is_some();
    let profile_outputs = |mut p: RawPlot| {
        p.outputs = Some(if many_outputs && run.points().len() == 1 { PlotOutputs::All } else { PlotOutputs::Last });
        p
    };
    match run.config.model.as_str() {
        "photoexcited" => {
            if many_outputs {
                let mut v = vec![
                    panel(PlotKind::Time, None, &["sigma_over_sigma0"], None),
                    panel(PlotKind::Time, None, &["zeta_t"], None),
                ];
                if run.param_bool("self_consistent_field") {
                    let mut p = panel(PlotKind::Time, None, &["field_squared"], None);
                    p.log_y = true;
                    v.push(p);
                }
                v.push(profile_outputs(panel(PlotKind::Profile, Some("energy_grid"), &["f"], None)));
                v
            } else if let Some(x) = x {
                let p = panel(PlotKind::Sweep, Some(x), &["sigma_over_sigma0"], hue.filter(|h| *h != x));
                vec![if x == "phonon_frequency" { with_reference(p, "sigma_over_sigma0", "sigma_eq10") } else { p }]
            } else {
                vec![panel(PlotKind::Profile, Some("energy_grid"), &["f"], None)]
            }
        }
        "eliashberg" => match run.param_str("task").unwrap_or("self_energy") {
            "threshold" if x.is_some() => vec![panel(PlotKind::Sweep, x, &["lambda_c"], None)],
            "stability" if has("lambda_c_zinv") && x.is_some() => {
                vec![with_reference(
                    panel(PlotKind::Sweep, x, &["lambda_c_linear"], None),
                    "lambda_c_linear",
                    "lambda_c_zinv",
                )]
            }
            "specific_heat" if x.is_some() => vec![with_reference(
                panel(PlotKind::Sweep, x, &["c_el_eq16_over_free"], None),
                "c_el_eq16_over_free",
                "c_el_eq5_over_free",
            )],
            "self_energy" => vec![profile_outputs(panel(PlotKind::Profile, Some("energy"), &["zinv"], None))],
            "stability" if run.has_array(first, "gamma") => {
                let vectors: Vec<String> = ["phi_stable_smallest_1", "phi_unstable_least_1", "phi_unstable_smallest_1"]
                    .iter()
                    .filter(|n| run.has_array(first, n))
                    .map(|s| s.to_string())
                    .collect();
                let mut v =
                    vec![titled(panel(PlotKind::Profile, Some("index"), &["gamma"], None), "spectrum γ_i (ascending)")];
                if !vectors.is_empty() {
                    let mut p = panel(PlotKind::Profile, Some("energy"), &[], None);
                    p.y = vectors;
                    v.push(titled(p, "eigenvectors"));
                }
                v
            }
            "kinetic" => vec![
                panel(PlotKind::Time, None, &["deviation_norm"], None),
                profile_outputs(panel(PlotKind::Profile, Some("index"), &["delta_f"], None)),
            ],
            _ => vec![panel(PlotKind::Table, None, &[], None)],
        },
        "interband" => {
            if run.axes.len() >= 2 {
                let (xa, ya) = (&run.axes[1].name, &run.axes[0].name);
                // The window mean when the run was long enough to have one (it is NaN for
                // runs shorter than the window), else |Δ| at the last output.
                let window = run
                    .column("delta_window_mean")
                    .is_some_and(|c| run.last_rows().iter().any(|r| r.values.get(c).is_some_and(|v| v.is_finite())));
                let z = if window { "delta_window_mean" } else { "delta_abs" };
                vec![panel(PlotKind::Heatmap, Some(xa), &[z], Some(ya))]
            } else {
                vec![
                    panel(PlotKind::Time, None, &["delta_abs"], None),
                    panel(PlotKind::Time, None, &["n22_mean"], None),
                ]
            }
        }
        "cavity" => {
            // The printed Riccati variants integrate in ω: F(ω) is their "time" series.
            if has("omega") && has("f") {
                return vec![with_reference(panel(PlotKind::Time, Some("omega"), &["f"], None), "f", "f0")];
            }
            let mut v =
                vec![with_reference(profile_outputs(panel(PlotKind::Profile, Some("omega"), &["f"], None)), "f", "f0")];
            if let Some(x) = x.or(by_len.first().map(|a| a.name.as_str())) {
                if has("t_eff") {
                    v.push(with_reference(panel(PlotKind::Sweep, Some(x), &["t_eff"], None), "t_eff", "t_eff_s97"));
                }
            }
            v
        }
        _ => {
            if let Some(x) = x {
                let obs = run.observables();
                vec![panel(PlotKind::Sweep, Some(x), &obs.iter().take(1).map(String::as_str).collect::<Vec<_>>(), hue)]
            } else if many_outputs {
                let obs = run.observables();
                vec![panel(PlotKind::Time, None, &obs.iter().take(1).map(String::as_str).collect::<Vec<_>>(), None)]
            } else {
                vec![panel(PlotKind::Table, None, &[], None)]
            }
        }
    }
}

impl RunData {
    /// A boolean model parameter as given (false when absent).
    pub fn param_bool(&self, key: &str) -> bool {
        self.config.params.get(key).and_then(|v| v.as_bool()).unwrap_or(false)
    }
}

/// Legend text of a quantity where it differs from the symbol of its axis label (the
/// eigenvectors share one axis, φ(E), and are told apart by their eigenvalue).
pub fn legend(model: &str, name: &str) -> Option<String> {
    if model != "eliashberg" {
        return None;
    }
    let rest = name.strip_prefix("phi_")?;
    let (kind, j) = rest.rsplit_once('_')?;
    let ord = match j {
        "1" => "",
        "2" => "2nd ",
        "3" => "3rd ",
        _ => return Some(format!("φ, {kind} #{j}")),
    };
    Some(match kind {
        "stable_smallest" => format!("φ of the {ord}smallest γ > 0"),
        "stable_largest" => format!("φ of the {ord}largest γ > 0"),
        "unstable_smallest" => format!("φ of the {ord}smallest |γ|, γ < 0"),
        "unstable_largest" => format!("φ of the {ord}largest |γ|, γ < 0"),
        _ => format!("φ, {rest}"),
    })
}

/// Symbol and unit of a quantity of `model` (a sweep axis, an observable column or an
/// array name), for axis labels and legends. Unknown names are shown as written.
pub fn label(model: &str, eliashberg_unit: &str, name: &str) -> String {
    let e = eliashberg_unit;
    let s: &str = match (model, name) {
        (_, "t") => match model {
            "photoexcited" => "t · Γ_eph",
            "interband" => "t · E_g / ħ",
            "eliashberg" => return format!("t ({e}⁻¹)"),
            _ => "t",
        },
        (_, "index") => "grid index i",
        ("photoexcited", "phonon_frequency") => "ω_p / W",
        ("photoexcited", "zeta") => "ζ",
        ("photoexcited", "zeta_t") => "ζ(t)",
        ("photoexcited", "temperature") => "T / W",
        ("photoexcited", "electric_field") => "E (units with v_F²τ_tr = W²Γ_eph)",
        ("photoexcited", "phonon_width") => "δω / W",
        ("photoexcited", "inelastic_rate") => "Γ_in / Γ_eph",
        ("photoexcited", "sigma_over_sigma0") => "σ / σ₀",
        ("photoexcited", "sigma_eq10") => "σ / σ₀ of Eq. (10)",
        ("photoexcited", "field_squared") => "E*² (internal field)",
        ("photoexcited", "chemical_potential") => "μ / W",
        ("photoexcited", "energy_grid") => "ε / W",
        ("photoexcited", "f") => "f(ε)",
        ("photoexcited", "dos") => "D(ε) · W",
        ("photoexcited", "particle_number") => "n (per site)",
        ("eliashberg", "temperature") => return format!("T₀ ({e})"),
        ("eliashberg", "lambda") => "λ",
        ("eliashberg", "lambda_c") => "λ_c",
        ("eliashberg", "lambda_c_zinv") => "λ_c from Z₀⁻¹ = 0 (Eq. 24)",
        ("eliashberg", "lambda_c_linear") => "λ_c from the linear problem (Eqs. 17–23)",
        ("eliashberg", "shape_width") => "α²F width σ (input unit of ω)",
        ("eliashberg", "e_star") => return format!("E* ({e})"),
        ("eliashberg", "energy") => return format!("E ({e})"),
        ("eliashberg", "zinv") => "Z₀⁻¹(E)",
        ("eliashberg", "sigma") => return format!("Σ(E) ({e})"),
        ("eliashberg", "gamma") => return format!("γ ({e})"),
        ("eliashberg", "c_el_eq16_over_free") => "C_el / C_free (Eq. 16)",
        ("eliashberg", "c_el_eq5_over_free") => "C_el / C_free (Eq. 5)",
        ("eliashberg", "delta_f") => "f(E) − f_eq(E)",
        ("eliashberg", "deviation_norm") => "‖f − f_eq‖",
        ("eliashberg", "table_index") => "α²F table",
        ("eliashberg", "g_input_unit") => "g (input unit)",
        ("eliashberg", "zinv_0") => "Z₀⁻¹(E = 0)",
        ("eliashberg", "zinv_min") => "min Z₀⁻¹(E)",
        ("eliashberg", "e_of_min") => return format!("E at min Z₀⁻¹ ({e})"),
        ("eliashberg", "stable") => "stable (1 = yes, min Z₀⁻¹ > 0)",
        ("eliashberg", "n_zeros") => "zeros of Z₀⁻¹(E)",
        ("eliashberg", "zero_1") => return format!("first zero of Z₀⁻¹ ({e})"),
        ("eliashberg", "zero_2") => return format!("second zero of Z₀⁻¹ ({e})"),
        ("eliashberg", "n_negative") => "number of γ < 0",
        ("eliashberg", "gamma_min_positive") => return format!("smallest γ > 0 ({e})"),
        ("eliashberg", "gamma_most_negative") => return format!("most negative γ ({e})"),
        ("eliashberg", "gamma_least_negative") => return format!("least negative γ ({e})"),
        ("eliashberg", "max_imag_relative") => "max |Im γ| / |γ|",
        ("eliashberg", n) if n.starts_with("phi_") => "φ(E) (scaled to max |φ| = 1)",
        ("interband", "rabi_frequency") => "Ω_R / E_g",
        ("interband", "coupling_v") => "V / E_g",
        ("interband", "gamma_rr") => "γ_rr / E_g",
        ("interband", "delta_abs") => "|Δ| / E_g",
        ("interband", "delta_window_mean") => "mean |Δ| / E_g (last quarter)",
        ("interband", "n11_mean") => "n₁₁ (lower band, mean over k)",
        ("interband", "n22_mean") => "n₂₂ (upper band, mean over k)",
        ("interband", "n11") => "n₁₁(k) (valence band)",
        ("interband", "n22") => "n₂₂(k) (conduction band)",
        ("interband", "n21_re") => "Re n₂₁(k)",
        ("interband", "n21_im") => "Im n₂₁(k)",
        ("interband", "s21_re") => "Re s₂₁(k)",
        ("interband", "s21_im") => "Im s₂₁(k)",
        ("interband", "k") => "k (1 / lattice constant)",
        ("cavity", "omega") => "ω (energy unit of the config)",
        ("cavity", "f") => "F(ω) = 1 − 2n(ω)",
        ("cavity", "f0") => "F₀(ω) = tanh((ω−μ₀)/2T_cry)",
        ("cavity", "coupling_g") => "g",
        ("cavity", "t_cry") => "T_cry (energy unit)",
        ("cavity", "t_eff") => "T_eff (energy unit)",
        ("cavity", "t_eff_s97") => "T_eff of Eq. (S97)",
        ("cavity", "mu") => "μ (energy unit)",
        ("cavity", "mu_s95") => "μ of Eq. (S95)",
        ("cavity", "eps_k") => "ε_k (energy unit)",
        ("cavity", "delta_o") => "ΔO",
        ("cavity", "delta_o_eq9") => "ΔO of Eq. (9)",
        ("cavity", "delta_o_on_shell") => "ΔO, on-shell integral",
        ("cavity", "on_shell_eps_k") => "ε_k = ω on shell (energy unit)",
        ("cavity", "on_shell_df") => "F(k_ε, ω = ε) − F₀(ε)",
        _ => return name.to_string(),
    };
    s.to_string()
}
