//! `neqkin plot` on small runs of every model, the `[plot]` config table, and shell
//! completions. The pictures are checked for their size (one panel 1000 × 690, two or more
//! in two columns of 800 × 580 under a 40-pixel heading) and for what is drawn on them:
//! curves in the first palette colour (31, 119, 180), heat-map cells in viridis colours.

use std::path::{Path, PathBuf};
use std::process::Command;

use neqkin::config::{parse, Plan};

fn neqkin(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_neqkin")).args(args).output().expect("neqkin runs")
}

/// Runs `config` on the CPU backend into `dir/out` and plots it into `dir/plot.png`.
fn run_and_plot(dir: &Path, config: &str) -> PathBuf {
    let cfg = dir.join("config.toml");
    std::fs::write(&cfg, config).unwrap();
    let out = dir.join("out");
    let r = neqkin(&["run", cfg.to_str().unwrap(), "--backend", "cpu", "--out", out.to_str().unwrap()]);
    assert!(matches!(r.status.code(), Some(0 | 1)), "run: {}", String::from_utf8_lossy(&r.stderr));
    let png = dir.join("plot.png");
    let r = neqkin(&["plot", out.to_str().unwrap(), "--png", png.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(0), "plot: {}", String::from_utf8_lossy(&r.stderr));
    png
}

/// Width, height and RGB pixels of a PNG.
fn read_png(path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    assert!(channels >= 3, "colour PNG expected, got {:?}", info.color_type);
    let px = buf[..info.buffer_size()].chunks(channels).map(|c| [c[0], c[1], c[2]]).collect();
    (info.width, info.height, px)
}

fn count(px: &[[u8; 3]], f: impl Fn(&[u8; 3]) -> bool) -> usize {
    px.iter().filter(|p| f(p)).count()
}

const FIRST_CURVE: [u8; 3] = [31, 119, 180];

fn assert_picture(png: &Path, size: (u32, u32), min_curve_px: usize) -> Vec<[u8; 3]> {
    let (w, h, px) = read_png(png);
    assert_eq!((w, h), size, "picture size of {}", png.display());
    let white = count(&px, |p| *p == [255, 255, 255]);
    let dark = count(&px, |p| p.iter().all(|&c| c < 80));
    let curve = count(&px, |p| *p == FIRST_CURVE);
    eprintln!("{}: {w}×{h}, white {white}, dark (text, axes) {dark}, first-curve colour {curve}", png.display());
    // A quarter at least: a heat map fills about two thirds of its picture.
    assert!(white > px.len() / 4, "a white background expected, {white} white pixels");
    assert!(dark > 2000, "axes and labels expected, {dark} dark pixels");
    assert!(curve >= min_curve_px, "curves expected: {curve} pixels of the first colour");
    px
}

#[test]
fn photoexcited_sweep_with_its_plot_table() {
    let dir = tempfile::tempdir().unwrap();
    let png = run_and_plot(
        dir.path(),
        r#"model = "photoexcited"
title = "small sigma sweep"
[solver]
t_end = 10.0
output_times = [10.0]
[params]
grid_points = 100
temperature = 0.01
filling = 0.5
zeta = 20.0
[[sweep]]
name = "phonon_frequency"
values = [0.3, 0.5, 0.7, 0.9]
[[sweep]]
name = "zeta"
values = [1.0, 20.0]
[plot]
kind = "sweep"
x = "phonon_frequency"
y = "sigma_over_sigma0"
hue = "zeta"
reference = { sigma_over_sigma0 = "sigma_eq10" }
"#,
    );
    assert_picture(&png, (1000, 690), 500);
}

#[test]
fn photoexcited_pulse_default_picture_has_four_panels() {
    let dir = tempfile::tempdir().unwrap();
    let png = run_and_plot(
        dir.path(),
        r#"model = "photoexcited"
[solver]
t_end = 2.0
n_outputs = 8
[params]
grid_points = 100
filling = 0.3333333333333333
phonon_frequency = 0.6666666666666666
pump_strength = 10.0
pulse_duration = 0.3
phonon_lifetime = 5.0
inelastic_rate = 0.01
temperature = 0.01
self_consistent_field = true
field_growth_rate = 100.0
field_seed = 1e-8
"#,
    );
    // σ(t), ζ(t), E*²(t), f(ε) at the output times: two rows of two.
    assert_picture(&png, (1600, 40 + 2 * 580), 300);
}

#[test]
fn eliashberg_specific_heat_sweep_and_self_energy_profile() {
    let dir = tempfile::tempdir().unwrap();
    let png = run_and_plot(
        dir.path(),
        r#"model = "eliashberg"
[solver]
method = "direct"
[params]
task = "specific_heat"
modes = [[1.0, 1.5]]
units = "input"
temperature = 0.1
[[sweep]]
name = "temperature"
linspace = [0.1, 0.5, 5]
"#,
    );
    assert_picture(&png, (1000, 690), 300);
    let dir = tempfile::tempdir().unwrap();
    let png = run_and_plot(
        dir.path(),
        r#"model = "eliashberg"
[solver]
method = "direct"
[params]
task = "self_energy"
modes = [[1.0, 1.0]]
temperature = 0.2
"#,
    );
    assert_picture(&png, (1000, 690), 300);
}

#[test]
fn interband_phase_diagram_is_a_heat_map() {
    let dir = tempfile::tempdir().unwrap();
    let png = run_and_plot(
        dir.path(),
        r#"model = "interband"
[solver]
t_end = 100.0
n_outputs = 4
[params]
band_a1 = 7.0
band_a2 = 24.0
gamma_ph = 0.02
gamma_rr = 0.002
cutoff = 0.2
grid_step = 0.02
[[sweep]]
name = "rabi_frequency"
values = [0.1, 0.3]
[[sweep]]
name = "coupling_v"
values = [0.0, 4.0, 8.0]
"#,
    );
    let px = assert_picture(&png, (1000, 690), 0);
    // Viridis cells: saturated colours that are not grey.
    let cells = count(&px, |p| {
        let (lo, hi) = (p.iter().min().unwrap(), p.iter().max().unwrap());
        hi - lo > 60 && *p != FIRST_CURVE
    });
    assert!(cells > 100_000, "heat-map cells expected, {cells} coloured pixels");
}

#[test]
fn cavity_distribution_and_effective_temperature() {
    let dir = tempfile::tempdir().unwrap();
    let png = run_and_plot(
        dir.path(),
        r#"model = "cavity"
[solver]
method = "newton"
steady_tol = 1e-11
[params]
level = 3
variant = "fokker_planck"
coupling_g = 0.5
t_cry = 0.1
t_mir = 100.0
nu0 = 1.0
gamma = 10.0
mu0 = 1.0
grid = "graded"
h_fine = 0.05
h_coarse = 2.5
omega_min = -199.0
omega_max = 201.0
[[sweep]]
name = "coupling_g"
values = [0.1, 0.3, 0.5, 1.0]
"#,
    );
    // F(ω) and T_eff(g): one row of two panels.
    assert_picture(&png, (1600, 40 + 580), 300);
}

#[test]
fn a_folder_that_is_not_an_output_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let r = neqkin(&["plot", dir.path().to_str().unwrap()]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{err}");
    assert!(err.contains(dir.path().to_str().unwrap()) && err.contains("not a neqkin output folder"), "{err}");
    let missing = dir.path().join("nothing_here");
    let r = neqkin(&["plot", missing.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("nothing_here") && err.contains("no such folder"), "{err}");
}

const BASE: &str = "model = \"relaxation\"\n[solver]\nt_end = 1.0\n[params]\nrate = 0.5\n[[sweep]]\nname = \"rate\"\nvalues = [0.5, 1.0]\n";

fn plan(text: &str) -> neqkin::Result<Plan> {
    Plan::check(parse(text, false)?, &neqkin::models::relaxation::Relaxation)
}

fn fails_on(text: &str, field: &str) {
    let err = plan(text).expect_err("must be rejected").to_string();
    assert!(err.contains(&format!("`{field}`")), "expected the field `{field}` in: {err}");
}

#[test]
fn plot_table_is_accepted_validated_and_ignored_by_the_solver() {
    let one = plan(&format!("{BASE}[plot]\nkind = \"sweep\"\nx = \"rate\"\ny = [\"y_mean\"]\n")).unwrap();
    assert_eq!(one.raw.plot.len(), 1);
    let two =
        plan(&format!("{BASE}[[plot]]\nkind = \"sweep\"\nx = \"rate\"\ny = \"y_mean\"\n[[plot]]\nkind = \"table\"\n"))
            .unwrap();
    assert_eq!(two.raw.plot.len(), 2);
    assert_eq!(two.raw.plot[0].y, vec!["y_mean".to_string()]);
    // The solver ignores it: same fingerprint (what --resume compares) as without.
    assert_eq!(one.fingerprint(), plan(BASE).unwrap().fingerprint());

    fails_on(&format!("{BASE}[plot]\nkind = \"pie\"\n"), "plot.kind");
    fails_on(&format!("{BASE}[plot]\nkind = \"sweep\"\nx = \"rate\"\ny = \"y\"\ncolour = 3\n"), "plot.colour");
    fails_on(&format!("{BASE}[plot]\nkind = \"sweep\"\nx = \"temperature\"\ny = \"y\"\n"), "plot.x");
    fails_on(&format!("{BASE}[plot]\nkind = \"sweep\"\ny = \"y\"\n"), "plot.x");
    fails_on(&format!("{BASE}[plot]\nkind = \"sweep\"\nx = \"rate\"\n"), "plot.y");
    fails_on(&format!("{BASE}[plot]\nkind = \"heatmap\"\nx = \"rate\"\ny = \"y\"\n"), "plot.hue");
    fails_on(&format!("{BASE}[plot]\nkind = \"profile\"\ny = \"f\"\n"), "plot.x");
    fails_on(
        &format!("{BASE}[plot]\nkind = \"sweep\"\nx = \"rate\"\ny = \"a\"\nreference = {{ b = \"c\" }}\n"),
        "plot.reference.b",
    );
    fails_on(&format!("{BASE}[[plot]]\nkind = \"table\"\n[[plot]]\nkind = \"bars\"\n"), "plot[1].kind");
    fails_on(&format!("{BASE}plot = 3\n"), "plot");
    fails_on(
        &format!("{BASE}[plot]\nkind = \"sweep\"\nx = \"rate\"\ny = \"y\"\nx_range = [2.0, 1.0]\n"),
        "plot.x_range",
    );
    fails_on(&format!("{BASE}[plot]\nkind = \"sweep\"\nx = \"rate\"\ny = \"y\"\nx_range = [1.0]\n"), "plot.x_range");
}

#[test]
fn completions_generate_for_bash() {
    let r = neqkin(&["completions", "bash"]);
    assert_eq!(r.status.code(), Some(0));
    let script = String::from_utf8_lossy(&r.stdout);
    assert!(script.contains("_neqkin()"), "a bash completion function");
    for sub in ["run", "plot", "merge", "devices", "completions"] {
        assert!(script.contains(sub), "subcommand {sub} is completed");
    }
    assert!(script.contains("--resume") && script.contains("--png"), "options are completed");
}
