//! Each sweep point's parameters are parsed from JSON into the model's typed struct once,
//! when the plan is checked (`Model::parse`); batch keys, footprints, the dataset's
//! probes, `Model::build` and `Model::evaluate` take those parsed handles and never parse
//! again. Counted with the `engine::model::params_parsed` hook, so this file holds one
//! test (tests of one binary run in parallel and would add to the count).

use std::path::Path;

use neqkin::engine::model::{params_parsed, Model};
use neqkin::run::{self, BackendChoice, RunOptions};

fn cpu(out: &Path) -> RunOptions {
    RunOptions { backend: BackendChoice::Cpu, out: Some(out.to_path_buf()), ..Default::default() }
}

/// Loads `text` as a config, then runs it (dry run, then the run itself) and returns how
/// many parameter sets were parsed while the plan was checked and while it ran.
fn parses(dir: &Path, name: &str, text: &str) -> (usize, u64, u64) {
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(&cfg, text).unwrap();
    let before = params_parsed();
    let (plan, model) = neqkin::config::load_plan(&cfg).unwrap();
    let at_plan = params_parsed();
    let out = dir.join(name);
    let opts = cpu(&out);
    run::dry_run(&plan, &*model, &out, &opts).unwrap();
    let s = run::run_plan(&plan, &*model, &out, &opts).unwrap();
    assert_eq!((s.sweep.points_run, s.failed_points), (plan.n_points(), 0), "{name}");
    (plan.n_points(), at_plan - before, params_parsed() - at_plan)
}

#[test]
fn each_point_is_parsed_once_when_the_plan_is_checked_and_never_in_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    // Time integration: two batch keys (grid sizes), arrays on (the dataset probes one
    // point per key), several batches.
    let relaxation = r#"
model = "relaxation"
[solver]
method = "dopri5"
t_end = 1.0
n_outputs = 2
[params]
initial = 2.0
[output]
arrays = true
batch_size = 2
[[sweep]]
name = "grid_points"
values = [4, 8]
[[sweep]]
name = "rate"
values = [0.5, 1.0, 2.0]
"#;
    assert_eq!(parses(tmp.path(), "relaxation", relaxation), (6, 6, 0));
    // Direct evaluation (Model::evaluate) on its starter sweep.
    let eliashberg = neqkin::models::find("eliashberg").unwrap();
    let text = neqkin::run::starter::init_toml(&*eliashberg);
    let (n, at_plan, in_run) = parses(tmp.path(), "eliashberg", &text);
    assert!(n >= 2, "{text}");
    assert_eq!((at_plan, in_run), (n as u64, 0), "{text}");
    // The handles are the model's own types: another model's handle is refused by type,
    // not re-read.
    let handle = neqkin::models::relaxation::Relaxation.parse(&serde_json::json!({})).unwrap();
    let e = eliashberg.build(&[handle]).err().unwrap().to_string();
    assert!(e.contains("internal error") && e.contains("RelaxationParams"), "{e}");
}
