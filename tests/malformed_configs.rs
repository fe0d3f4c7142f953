//! A battery of malformed configs across all five models (issue 11): each one must be
//! refused by `neqkin run` with exit code 2, a message naming the field (or the TOML
//! file position, or the option that raises a limit), within seconds, and without
//! creating the output folder.
//!
//! Every case is a small valid config per model with one thing broken: TOML syntax,
//! unknown keys, wrong types, NaN/inf, out-of-range values, malformed sweeps, sweeps whose
//! point count overflows, task/method mismatches, missing files, and sizes beyond the
//! memory/output limits (`n_outputs = 1e10`, `n_omega = 1e9`, an Eliashberg comb of 10⁹
//! modes, `grid_step = 1e-7`, two axes of 10⁷ values, four of 65 536).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_neqkin");
/// Longest a refusal may take (debug build, shared machine).
const FAST: Duration = Duration::from_secs(5);

/// A small valid config of each model: (model, [solver] body, [params] body).
fn base(model: &str) -> (&'static str, &'static str) {
    match model {
        "relaxation" => ("method = \"dopri5\"\nt_end = 1.0\nn_outputs = 2", "initial = 2.0"),
        "photoexcited" => ("t_end = 1.0\noutput_times = [1.0]", "filling = 0.5\nzeta = 5.0\ngrid_points = 100"),
        "cavity" => (
            "method = \"newton\"\nsteady_tol = 1e-10",
            "level = 3\ncoupling_g = 0.3\nt_cry = 1.0\nt_mir = 10.0\nnu0 = 1.0\ngamma = 1.0\nmu0 = 1.0",
        ),
        "eliashberg" => (
            "method = \"direct\"",
            "task = \"threshold\"\ncomb = { start = 40.0, step = 1.0, count = 21 }\ntemperature = 0.18",
        ),
        "interband" => ("t_end = 10.0\nn_outputs = 2", "gamma_ph = 0.01\ngamma_rr = 0.001\ngrid_step = 0.01"),
        _ => unreachable!(),
    }
}

/// A float parameter of each model (for type, NaN and sweep-point cases).
fn float_key(model: &str) -> &'static str {
    match model {
        "relaxation" => "diffusion",
        "photoexcited" => "temperature",
        "cavity" => "t_cry",
        "eliashberg" => "temperature",
        "interband" => "coupling_v",
        _ => unreachable!(),
    }
}

/// A value of [`float_key`] that the model refuses.
fn bad_value(model: &str) -> &'static str {
    let _ = model;
    "-1.0"
}

const MODELS: [&str; 5] = ["relaxation", "photoexcited", "cavity", "eliashberg", "interband"];

struct Case {
    name: String,
    toml: String,
    /// Substrings stderr must contain (the field, position or option).
    expect: Vec<String>,
    args: Vec<String>,
}

fn config(model: &str, solver: &str, params: &str, rest: &str) -> String {
    format!("model = \"{model}\"\n\n[solver]\n{solver}\n\n[params]\n{params}\n\n{rest}\n")
}

fn case(name: impl Into<String>, toml: String, expect: &[&str]) -> Case {
    Case { name: name.into(), toml, expect: expect.iter().map(|s| s.to_string()).collect(), args: Vec::new() }
}

/// Replaces `key = ...` (a whole line) in `body`, or appends `key = value`.
fn set(body: &str, key: &str, value: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut found = false;
    for line in body.lines() {
        if line.split('=').next().map(str::trim) == Some(key) {
            out.push(format!("{key} = {value}"));
            found = true;
        } else {
            out.push(line.to_string());
        }
    }
    if !found {
        out.push(format!("{key} = {value}"));
    }
    out.join("\n")
}

fn unset(body: &str, key: &str) -> String {
    body.lines().filter(|l| l.split('=').next().map(str::trim) != Some(key)).collect::<Vec<_>>().join("\n")
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for m in MODELS {
        let (s, p) = base(m);
        let fk = float_key(m);
        let c = |n: &str| format!("{m}/{n}");
        // TOML syntax: the parser names the line and column.
        v.push(case(c("toml_unclosed_table"), format!("{}[output\n", config(m, s, p, "")), &["line"]));
        v.push(case(c("toml_bad_value"), config(m, s, &format!("{p}\nx = = 1"), ""), &["line"]));
        v.push(case(c("toml_duplicate_key"), config(m, s, &format!("{p}\n{fk} = 1.0\n{fk} = 2.0"), ""), &["line"]));
        // Top level.
        v.push(case(c("unknown_top_key"), format!("colour = \"red\"\n{}", config(m, s, p, "")), &["colour"]));
        v.push(case(c("model_unknown"), config(m, s, p, "").replacen(&format!("\"{m}\""), "\"nope\"", 1), &["nope"]));
        v.push(case(
            c("model_missing"),
            config(m, s, p, "").replacen(&format!("model = \"{m}\"\n"), "", 1),
            &["model"],
        ));
        // Solver.
        v.push(case(c("solver_method_unknown"), config(m, &set(s, "method", "\"euler\""), p, ""), &["solver.method"]));
        v.push(case(c("solver_unknown_key"), config(m, &format!("{s}\ntolerance = 1"), p, ""), &["solver.tolerance"]));
        v.push(case(c("solver_rtol_string"), config(m, &format!("{s}\nrtol = \"tight\""), p, ""), &["solver.rtol"]));
        if m != "eliashberg" {
            v.push(case(c("solver_rtol_negative"), config(m, &format!("{s}\nrtol = -1e-6"), p, ""), &["solver.rtol"]));
            v.push(case(
                c("solver_n_outputs_1e10"),
                config(m, &unset(&set(s, "n_outputs", "10000000000"), "output_times"), p, ""),
                &["solver.n_outputs"],
            ));
            v.push(case(
                c("solver_n_outputs_float"),
                config(m, &unset(&set(s, "n_outputs", "1e10"), "output_times"), p, ""),
                &["solver.n_outputs"],
            ));
            v.push(case(
                c("solver_max_steps_zero"),
                config(m, &format!("{s}\nmax_steps = 0"), p, ""),
                &["solver.max_steps"],
            ));
            v.push(case(c("solver_atol_negative"), config(m, &format!("{s}\natol = -1.0"), p, ""), &["solver.atol"]));
        }
        // Parameters.
        v.push(case(c("param_unknown"), config(m, s, &format!("{p}\nbogus_key = 1"), ""), &["params.bogus_key"]));
        v.push(case(c("param_string"), config(m, s, &set(p, fk, "\"hot\""), ""), &[&format!("params.{fk}")]));
        v.push(case(c("param_nan"), config(m, s, &set(p, fk, "nan"), ""), &[&format!("params.{fk}")]));
        v.push(case(c("param_inf"), config(m, s, &set(p, fk, "-inf"), ""), &[&format!("params.{fk}")]));
        v.push(case(c("param_bool"), config(m, s, &set(p, fk, "true"), ""), &[&format!("params.{fk}")]));
        v.push(case(c("params_not_table"), format!("model = \"{m}\"\nparams = [1, 2]\n[solver]\n{s}\n"), &["params"]));
        // Sweeps.
        let sweep = |body: &str| format!("[[sweep]]\n{body}\n");
        v.push(case(
            c("sweep_values_and_linspace"),
            config(m, s, p, &sweep(&format!("name = \"{fk}\"\nvalues = [1.0]\nlinspace = [0.1, 1.0, 3]"))),
            &["sweep[0].linspace"],
        ));
        v.push(case(c("sweep_empty_name"), config(m, s, p, &sweep("name = \"\"\nvalues = [1.0]")), &["sweep[0].name"]));
        v.push(case(
            c("sweep_count_zero"),
            config(m, s, p, &sweep(&format!("name = \"{fk}\"\nlinspace = [0.1, 1.0, 0]"))),
            &["sweep[0].linspace"],
        ));
        v.push(case(
            c("sweep_values_empty"),
            config(m, s, p, &sweep(&format!("name = \"{fk}\"\nvalues = []"))),
            &["sweep[0].values"],
        ));
        v.push(case(
            c("sweep_duplicate_axis"),
            config(
                m,
                s,
                p,
                &format!(
                    "{}{}",
                    sweep(&format!("name = \"{fk}\"\nvalues = [1.0]")),
                    sweep(&format!("name = \"{fk}\"\nvalues = [2.0]"))
                ),
            ),
            &["sweep[1].name"],
        ));
        v.push(case(
            c("sweep_unknown_parameter"),
            config(m, s, p, &sweep("name = \"nonsense\"\nvalues = [1.0, 2.0]")),
            &["params.nonsense"],
        ));
        v.push(case(
            c("sweep_bad_point"),
            config(m, s, p, &sweep(&format!("name = \"{fk}\"\nvalues = [{}]", bad_value(m)))),
            &[&format!("params.{fk}")],
        ));
        let four: String = ["a", "b", "c", "d"]
            .iter()
            .map(|n| sweep(&format!("name = \"{n}\"\nlinspace = [0.0, 1.0, 65536]")))
            .collect();
        v.push(case(c("sweep_4_axes_of_65536"), config(m, s, p, &four), &["2^64", "--max-points"]));
        let two: String =
            ["a", "b"].iter().map(|n| sweep(&format!("name = \"{n}\"\nlinspace = [0.0, 1.0, 1e7]"))).collect();
        v.push(case(c("sweep_2_axes_of_1e7"), config(m, s, p, &two), &["100000000000000", "--max-points"]));
        v.push(case(
            c("sweep_axis_too_long"),
            config(m, s, p, &sweep(&format!("name = \"{fk}\"\nlinspace = [0.1, 1.0, 1e8]"))),
            &["sweep[0].linspace"],
        ));
        // Output.
        v.push(case(c("output_batch_negative"), config(m, s, p, "[output]\nbatch_size = -3"), &["output.batch_size"]));
        v.push(case(c("output_arrays_string"), config(m, s, p, "[output]\narrays = \"yes\""), &["output.arrays"]));
        v.push(case(c("output_unknown_key"), config(m, s, p, "[output]\ncompress = true"), &["output.compress"]));
    }

    // Model-specific cases.
    let with = |m: &str, key: &str, value: &str| config(m, base(m).0, &set(base(m).1, key, value), "");
    let with_solver = |m: &str, solver: &str, params: &str| config(m, solver, params, "");
    let r = "relaxation";
    v.push(case("relaxation/grid_points_zero", with(r, "grid_points", "0"), &["params.grid_points"]));
    v.push(case("relaxation/grid_points_fraction", with(r, "grid_points", "2.5"), &["params.grid_points"]));
    v.push(case("relaxation/grid_points_1e12", with(r, "grid_points", "1000000000000"), &["params.grid_points"]));
    v.push(case("relaxation/diffusion_negative", with(r, "diffusion", "-1.0"), &["params.diffusion"]));
    v.push(case("relaxation/initial_wrong_length", with(r, "initial", "[1.0, 2.0]"), &["params.initial"]));
    v.push(case("relaxation/initial_string", with(r, "initial", "\"flat\""), &["params.initial"]));
    v.push(case(
        "relaxation/output_times_decreasing",
        with_solver(r, "t_end = 1.0\noutput_times = [0.5, 0.2]", "initial = 2.0"),
        &["solver.output_times[1]"],
    ));
    v.push(case(
        "relaxation/output_times_past_end",
        with_solver(r, "t_end = 1.0\noutput_times = [2.0]", "initial = 2.0"),
        &["solver.output_times[0]"],
    ));
    v.push(case(
        "relaxation/both_output_kinds",
        with_solver(r, "t_end = 1.0\noutput_times = [1.0]\nn_outputs = 3", "initial = 2.0"),
        &["solver.n_outputs"],
    ));
    v.push(case("relaxation/rk4_without_dt", with_solver(r, "method = \"rk4\"\nt_end = 1.0", ""), &["solver.dt"]));
    v.push(case(
        "relaxation/dt_past_end",
        with_solver(r, "method = \"rk4\"\nt_end = 1.0\ndt = 5.0", ""),
        &["solver.dt"],
    ));
    v.push(case(
        "relaxation/deviation_with_rk4",
        with_solver(r, "method = \"rk4\"\nt_end = 1.0\ndt = 0.1\nerror_scale = \"deviation\"", ""),
        &["solver.error_scale"],
    ));
    v.push(case("relaxation/t_end_missing", with_solver(r, "method = \"dopri5\"", ""), &["solver.t_end"]));
    v.push(case("relaxation/newton_without_tol", with_solver(r, "method = \"newton\"", ""), &["solver.steady_tol"]));
    let mut mem = case(
        "relaxation/batch_over_memory_cap",
        config(
            r,
            base(r).0,
            "grid_points = 4000000",
            "[[sweep]]\nname = \"rate\"\nvalues = [1, 2, 3, 4, 5, 6, 7, 8]\n[output]\nbatch_size = 8",
        ),
        &["--max-memory", "GiB"],
    );
    mem.args = vec!["--max-memory".into(), "1G".into()];
    v.push(mem);
    let mut one = case(
        "relaxation/point_over_memory_cap",
        config(r, base(r).0, "grid_points = 4000000", ""),
        &["--max-memory", "one sweep point"],
    );
    one.args = vec!["--max-memory".into(), "16M".into()];
    v.push(one);
    let mut outcap = case(
        "relaxation/output_over_cap",
        config(r, base(r).0, "grid_points = 1000", "[[sweep]]\nname = \"rate\"\nlinspace = [0.1, 1.0, 100]"),
        &["--max-output", "arrays"],
    );
    outcap.args = vec!["--max-output".into(), "64K".into()];
    v.push(outcap);
    let mut points = case(
        "relaxation/points_over_cap",
        config(r, base(r).0, "", "[[sweep]]\nname = \"rate\"\nlinspace = [0.1, 1.0, 100]"),
        &["--max-points", "100 points"],
    );
    points.args = vec!["--max-points".into(), "10".into()];
    v.push(points);
    let mut badsize = case("relaxation/max_memory_unparsable", config(r, base(r).0, base(r).1, ""), &["--max-memory"]);
    badsize.args = vec!["--max-memory".into(), "lots".into()];
    v.push(badsize);

    let p = "photoexcited";
    v.push(case("photoexcited/grid_points_small", with(p, "grid_points", "8"), &["params.grid_points"]));
    v.push(case("photoexcited/grid_points_huge", with(p, "grid_points", "2000000"), &["params.grid_points"]));
    v.push(case("photoexcited/grid_points_string", with(p, "grid_points", "\"fine\""), &["params.grid_points"]));
    v.push(case("photoexcited/temperature_negative", with(p, "temperature", "-0.1"), &["params.temperature"]));
    v.push(case("photoexcited/dos_unknown", with(p, "dos", "\"weird\""), &["params.dos"]));
    v.push(case(
        "photoexcited/dos_table_missing_file",
        config(p, base(p).0, &format!("{}\ndos = \"table\"\ndos_table = \"/nonexistent/dos.csv\"", base(p).1), ""),
        &["params.dos_table"],
    ));
    v.push(case(
        "photoexcited/k_points_huge",
        config(p, base(p).0, &format!("{}\ndos = \"p_band\"\nk_points = 1000", base(p).1), ""),
        &["params.k_points"],
    ));
    v.push(case("photoexcited/zeta_string", with(p, "zeta", "\"five\""), &["params.zeta"]));
    v.push(case(
        "photoexcited/phonon_frequency_unresolved",
        with(p, "phonon_frequency", "1e-6"),
        &["params.phonon_frequency"],
    ));

    let c = "cavity";
    v.push(case("cavity/level_4", with(c, "level", "4"), &["params.level"]));
    v.push(case("cavity/variant_unknown", with(c, "variant", "\"bogus\""), &["params.variant"]));
    v.push(case("cavity/n_omega_1e9", with(c, "n_omega", "1000000000"), &["params.n_omega"]));
    v.push(case("cavity/n_omega_4", with(c, "n_omega", "4"), &["params.n_omega"]));
    v.push(case("cavity/n_omega_string", with(c, "n_omega", "\"many\""), &["params.n_omega"]));
    v.push(case("cavity/t_cry_zero", with(c, "t_cry", "0.0"), &["params.t_cry"]));
    v.push(case("cavity/grid_unknown", with(c, "grid", "\"hex\""), &["params.grid"]));
    v.push(case("cavity/coupling_negative", with(c, "coupling_g", "-1.0"), &["params.coupling_g"]));
    v.push(case("cavity/dim_5", with(c, "dim", "5"), &["params.dim"]));
    v.push(case("cavity/on_shell_decreasing", with(c, "on_shell_eps_k", "[1.0, 0.5]"), &["params.on_shell_eps_k"]));
    v.push(case("cavity/level1_without_gamma_ph", with(c, "level", "1"), &["params.gamma_ph"]));
    v.push(case(
        "cavity/level1_n_omega_1e5",
        config(c, "t_end = 10.0", &format!("{}\ngamma_ph = 0.1\nn_omega = 100000", set(base(c).1, "level", "1")), ""),
        &["params.n_omega", "dense"],
    ));
    v.push(case(
        "cavity/graded_with_n_omega",
        config(c, base(c).0, &format!("{}\ngrid = \"graded\"\nn_omega = 801", base(c).1), ""),
        &["params.n_omega"],
    ));

    let e = "eliashberg";
    let (es, ep) = base(e);
    v.push(case("eliashberg/task_unknown", with(e, "task", "\"fly\""), &["params.task"]));
    v.push(case(
        "eliashberg/temperature_missing",
        config(e, es, &unset(ep, "temperature"), ""),
        &["params.temperature"],
    ));
    v.push(case(
        "eliashberg/comb_1e9_modes",
        with(e, "comb", "{ start = 40.0, step = 1.0, count = 1000000000 }"),
        &["params.comb.count"],
    ));
    v.push(case(
        "eliashberg/comb_count_string",
        with(e, "comb", "{ start = 40.0, step = 1.0, count = \"many\" }"),
        &["params.comb.count"],
    ));
    v.push(case(
        "eliashberg/comb_start_negative",
        with(e, "comb", "{ start = -1.0, step = 1.0, count = 3 }"),
        &["params.comb"],
    ));
    v.push(case(
        "eliashberg/comb_and_modes",
        config(e, es, &format!("{ep}\nmodes = [[40.0, 1.0]]"), ""),
        &["params.modes"],
    ));
    v.push(case(
        "eliashberg/alpha2f_missing_file",
        config(e, es, &format!("{}\nalpha2f_table = \"/nonexistent/a2f.csv\"", unset(ep, "comb")), ""),
        &["params.alpha2f_table", "/nonexistent/a2f.csv"],
    ));
    v.push(case(
        "eliashberg/stability_with_dopri5",
        config(e, "t_end = 1.0", &format!("{}\ngrid_step = 1.0\nlambda = 1.0", set(ep, "task", "\"stability\"")), ""),
        &["solver.method", "direct"],
    ));
    v.push(case(
        "eliashberg/kinetic_with_direct",
        config(
            e,
            es,
            &format!("{}\ngrid_step = 1.0\nlambda = 1.0\ninitial_temperature = 0.3", set(ep, "task", "\"kinetic\"")),
            "",
        ),
        &["solver.method", "kinetic"],
    ));
    v.push(case(
        "eliashberg/grid_step_1e-7",
        config(e, es, &format!("{}\ngrid_step = 1e-7\nlambda = 1.0", set(ep, "task", "\"stability\"")), ""),
        &["--max-memory"],
    ));
    v.push(case("eliashberg/offdiag_sign_2", with(e, "offdiag_sign", "2.0"), &["params.offdiag_sign"]));
    v.push(case("eliashberg/units_unknown", with(e, "units", "\"furlongs\""), &["params.units"]));
    v.push(case("eliashberg/grid_points_2", with(e, "grid_points", "2"), &["params.grid_points"]));
    v.push(case(
        "eliashberg/shape_without_lambda",
        config(
            e,
            es,
            &format!("{}\nshape = \"gaussian\"\nshape_center = 40.0\nshape_width = 5.0", unset(ep, "comb")),
            "",
        ),
        &["params.lambda"],
    ));

    let i = "interband";
    v.push(case(
        "interband/phonon_profile_unknown",
        with(i, "phonon_profile", "\"bogus\""),
        &["params.phonon_profile"],
    ));
    v.push(case("interband/phonon_profile_number", with(i, "phonon_profile", "3"), &["params.phonon_profile"]));
    v.push(case("interband/grid_step_tiny", with(i, "grid_step", "1e-9"), &["params.grid_step"]));
    v.push(case("interband/cutoff_negative", with(i, "cutoff", "-1.0"), &["params.cutoff"]));
    v.push(case("interband/band_a1_zero", with(i, "band_a1", "0.0"), &["params.band_a1"]));
    v.push(case("interband/profile_cap_small", with(i, "phonon_profile_cap", "0.5"), &["params.phonon_profile_cap"]));
    v.push(case("interband/early_stop_number", with(i, "early_stop", "3"), &["params.early_stop"]));
    v.push(case("interband/seed_re_nan", with(i, "seed_re", "nan"), &["params.seed_re"]));
    v
}

fn run_case(dir: &Path, c: &Case) -> Result<(), String> {
    let stem = c.name.replace('/', "__");
    let cfg = dir.join(format!("{stem}.toml"));
    std::fs::write(&cfg, &c.toml).unwrap();
    let out = dir.join(format!("{stem}_out"));
    let started = Instant::now();
    let o = Command::new(BIN)
        .arg("run")
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .args(["--backend", "cpu"])
        .args(&c.args)
        .output()
        .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&o.stderr);
    let mut why = Vec::new();
    if o.status.code() != Some(2) {
        why.push(format!("exit code {:?}, want 2", o.status.code()));
    }
    for e in &c.expect {
        if !stderr.contains(e.as_str()) {
            why.push(format!("stderr does not name `{e}`"));
        }
    }
    if took > FAST {
        why.push(format!("took {took:?} (> {FAST:?})"));
    }
    if out.exists() {
        why.push("the output folder was created".into());
    }
    if why.is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {}\n  stderr: {}\n  config:\n{}", c.name, why.join("; "), stderr.trim(), c.toml))
    }
}

#[test]
fn malformed_configs_exit_2_naming_the_field_fast_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cases = cases();
    assert!(cases.len() >= 100, "only {} cases", cases.len());
    for m in MODELS {
        assert!(cases.iter().filter(|c| c.name.starts_with(m)).count() >= 20, "few cases for {m}");
    }
    let started = Instant::now();
    // Two workers: the cases are independent processes.
    let (a, b): (Vec<(usize, &Case)>, Vec<(usize, &Case)>) = cases.iter().enumerate().partition(|(k, _)| k % 2 == 0);
    let failures: Vec<String> = std::thread::scope(|s| {
        let h: Vec<_> = [a, b]
            .into_iter()
            .map(|part| {
                let dir = dir.path();
                s.spawn(move || part.iter().filter_map(|(_, c)| run_case(dir, c).err()).collect::<Vec<_>>())
            })
            .collect();
        h.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    eprintln!("{} malformed configs in {:.1} s", cases.len(), started.elapsed().as_secs_f64());
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn a_valid_base_config_of_every_model_passes_the_dry_run() {
    // The battery's bases are valid, so each refusal above is the one broken thing.
    let dir = tempfile::tempdir().unwrap();
    for m in MODELS {
        let (s, p) = base(m);
        let cfg = dir.path().join(format!("{m}.toml"));
        std::fs::write(&cfg, config(m, s, p, "")).unwrap();
        let out = dir.path().join(format!("{m}_out"));
        let o = Command::new(BIN)
            .args(["run", "--dry-run", "--backend", "cpu", "--out"])
            .arg(&out)
            .arg(&cfg)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{m}: {}", String::from_utf8_lossy(&o.stderr));
        for what in ["points: 1", "batches: 1", "memory:", "output:", "backend: cpu"] {
            assert!(stdout.contains(what), "{m}: dry run does not print `{what}`:\n{stdout}");
        }
        assert!(!out.exists(), "{m}: the dry run created {}", out.display());
    }
}
