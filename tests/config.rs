//! Config errors name their field; sweep expansion order and counts; shard parsing.

use neqkin::config::{parse, Plan};
use neqkin::models::relaxation::Relaxation;
use neqkin::run::schedule::{point, points, Shard};
use neqkin::NeqkinError;

const BASE: &str = r#"
model = "relaxation"
[solver]
method = "dopri5"
t_end = 1.0
[params]
rate = 0.5
"#;

fn plan(text: &str) -> neqkin::Result<Plan> {
    let raw = parse(text, false)?;
    let model = neqkin::models::find(&raw.model)?;
    Plan::check(raw, &*model)
}

/// Asserts that `text` fails with an error naming `field`.
fn fails_on(text: &str, field: &str) {
    match plan(text) {
        Ok(_) => panic!("config should fail on `{field}`:\n{text}"),
        Err(NeqkinError::InvalidParameter { field: f, reason }) => {
            assert_eq!(f, field, "reason: {reason}");
            let msg = NeqkinError::invalid(f, reason).to_string();
            assert!(msg.contains(field), "{msg}");
        }
        Err(other) => {
            let msg = other.to_string();
            assert!(msg.contains(field), "error `{msg}` does not name `{field}`");
        }
    }
}

#[test]
fn unknown_key_at_each_level() {
    fails_on(&format!("bogus = 1\n{BASE}"), "bogus");
    fails_on(&BASE.replace("t_end = 1.0", "t_end = 1.0\ntolerance = 3"), "solver.tolerance");
    fails_on(&format!("{BASE}\n[output]\narray = true\n"), "output.array");
    fails_on(&format!("{BASE}\n[[sweep]]\nname = \"rate\"\nvalues = [1.0]\nstep = 2\n"), "sweep[0].step");
    fails_on(&format!("{BASE}\ntemperature = 3\n"), "params.temperature");
}

#[test]
fn wrong_types_and_missing_keys_name_the_field() {
    fails_on(&BASE.replace("t_end = 1.0", "t_end = \"long\""), "solver.t_end");
    fails_on(&BASE.replace("t_end = 1.0", ""), "solver.t_end");
    fails_on(&BASE.replace("method = \"dopri5\"", "method = \"euler\""), "solver.method");
    fails_on(&BASE.replace("model = \"relaxation\"", "model = \"nope\""), "nope");
    fails_on(&format!("{BASE}\n[output]\nbatch_size = -3\n"), "output.batch_size");
}

#[test]
fn non_finite_values_are_rejected_with_their_path() {
    fails_on(&BASE.replace("rate = 0.5", "rate = nan"), "params.rate");
    fails_on(&BASE.replace("t_end = 1.0", "t_end = inf"), "solver.t_end");
    fails_on(&format!("{BASE}\n[[sweep]]\nname = \"rate\"\nvalues = [1.0, -inf]\n"), "sweep[0].values[1]");
    fails_on(&BASE.replace("t_end = 1.0", "t_end = 1.0\nrtol = nan"), "solver.rtol");
    // JSON has no NaN literal; a huge exponent is out of range.
    let json = r#"{"model": "relaxation", "solver": {"t_end": 1e999}}"#;
    assert!(parse(json, true).is_err());
}

#[test]
fn solver_ranges() {
    fails_on(&BASE.replace("t_end = 1.0", "t_end = 1.0\nrtol = -1e-6"), "solver.rtol");
    fails_on(&BASE.replace("t_end = 1.0", "t_end = 1.0\noutput_times = [0.5, 0.2]"), "solver.output_times[1]");
    fails_on(&BASE.replace("t_end = 1.0", "t_end = 1.0\noutput_times = [2.0]"), "solver.output_times[0]");
    fails_on(&BASE.replace("t_end = 1.0", "t_end = 1.0\noutput_times = [1.0]\nn_outputs = 3"), "solver.n_outputs");
    fails_on(&BASE.replace("method = \"dopri5\"", "method = \"rk4\""), "solver.dt");
    fails_on(&BASE.replace("t_end = 1.0", "t_end = 1.0\nmax_steps = 0"), "solver.max_steps");
}

#[test]
fn error_scale_is_checked() {
    let with = |extra: &str| BASE.replace("t_end = 1.0", &format!("t_end = 1.0\n{extra}"));
    let p = plan(&with("error_scale = \"deviation\"\natol = 1e-12")).unwrap();
    match p.solver {
        neqkin::config::SolverPlan::Integrate(o) => {
            assert_eq!(o.error_scale, neqkin::engine::solve::ErrorScale::Deviation)
        }
        _ => panic!("an integration"),
    }
    fails_on(&with("error_scale = \"relative\""), "solver.error_scale");
    // Components that do not deviate would get weight 0.
    fails_on(&with("error_scale = \"deviation\"\natol = 0.0"), "solver.atol");
    // rk4 has no error control to scale.
    fails_on(
        &with("error_scale = \"deviation\"").replace("method = \"dopri5\"", "method = \"rk4\"\ndt = 0.1"),
        "solver.error_scale",
    );
}

#[test]
fn bad_sweep_specs() {
    let sweep = |body: &str| {
        format!("{BASE}\n[[sweep]]\nname = \"rate\"\nvalues = [1.0]\n[[sweep]]\nname = \"target\"\n{body}\n")
    };
    fails_on(&sweep("linspace = [0.0, 1.0]"), "sweep[1].linspace");
    fails_on(&sweep("linspace = [0.0, 1.0, 2.5]"), "sweep[1].linspace");
    fails_on(&sweep("linspace = [0.0, 1.0, 0]"), "sweep[1].linspace");
    fails_on(&sweep("logspace = [0.0, 1.0, 3]"), "sweep[1].logspace");
    fails_on(&sweep("values = [1.0]\nlinspace = [0.0, 1.0, 3]"), "sweep[1].linspace");
    fails_on(&sweep(""), "sweep[1]");
    fails_on(&sweep("values = []"), "sweep[1].values");
    // Same axis twice.
    fails_on(
        &format!("{BASE}\n[[sweep]]\nname = \"rate\"\nvalues = [1.0]\n[[sweep]]\nname = \"rate\"\nvalues = [2.0]\n"),
        "sweep[1].name",
    );
    // An axis the model does not accept is reported through the model's validate.
    fails_on(&format!("{BASE}\n[[sweep]]\nname = \"temperature\"\nvalues = [1.0]\n"), "params.temperature");
}

#[test]
fn every_point_is_validated_up_front() {
    // diffusion must be ≥ 0: the third point is bad, and the error says which point.
    let text = format!("{BASE}\n[[sweep]]\nname = \"diffusion\"\nvalues = [0.0, 1.0, -1.0]\n");
    let err = plan(&text).unwrap_err().to_string();
    assert!(err.contains("params.diffusion") && err.contains("sweep point 2"), "{err}");
}

#[test]
fn sweep_expansion_counts_and_order() {
    let text = format!(
        "{BASE}\n[[sweep]]\nname = \"rate\"\nlinspace = [0.0, 1.0, 3]\n[[sweep]]\nname = \"target\"\nvalues = [10.0, 20.0]\n[[sweep]]\nname = \"diffusion\"\nlogspace = [0.01, 1.0, 3]\n"
    );
    let p = plan(&text).unwrap();
    assert_eq!(p.n_points(), 18);
    let all: Vec<_> = points(&p).collect();
    assert_eq!(all.len(), 18);
    // Last axis fastest.
    assert_eq!(all[0].values, vec![0.0, 10.0, 0.01]);
    assert_eq!(all[1].values[..2], [0.0, 10.0]);
    assert!((all[1].values[2] - 0.1).abs() < 1e-15);
    assert_eq!(all[2].values, vec![0.0, 10.0, 1.0]);
    assert_eq!(all[3].values, vec![0.0, 20.0, 0.01]);
    assert_eq!(all[6].values, vec![0.5, 10.0, 0.01]);
    assert_eq!(all[17].values, vec![1.0, 20.0, 1.0]);
    assert_eq!(all[6].params["rate"], 0.5);
    assert_eq!(all[6].params["target"], 10); // integral values become JSON integers
    for (i, pt) in all.iter().enumerate() {
        assert_eq!(pt.index, i);
        assert_eq!(*pt, point(&p, i));
    }
    // No axes: one point with the base parameters.
    let p = plan(BASE).unwrap();
    assert_eq!(p.n_points(), 1);
    assert_eq!(point(&p, 0).params["rate"], 0.5);
}

#[test]
fn direct_method_needs_a_model_that_evaluates() {
    fails_on(&BASE.replace("method = \"dopri5\"", "method = \"direct\""), "solver.method");
}

#[test]
fn output_times_defaults() {
    let p = plan(&BASE.replace("t_end = 1.0", "t_end = 2.0\nn_outputs = 4")).unwrap();
    assert_eq!(p.output_times(), &[0.5, 1.0, 1.5, 2.0]);
    let p = plan(BASE).unwrap();
    assert_eq!(p.output_times(), &[1.0]);
}

#[test]
fn json_config_is_accepted_and_checked() {
    let json = r#"{"model": "relaxation", "solver": {"t_end": 1.0}, "params": {"rate": 2.0},
                   "sweep": [{"name": "target", "values": [1, 2]}]}"#;
    let p = Plan::check(parse(json, true).unwrap(), &Relaxation).unwrap();
    assert_eq!(p.n_points(), 2);
    let bad = r#"{"model": "relaxation", "solver": {"t_end": 1.0, "rtoll": 1}}"#;
    let err = parse(bad, true).unwrap_err().to_string();
    assert!(err.contains("solver.rtoll"), "{err}");
}

#[test]
fn shard_parsing() {
    assert_eq!("1/4".parse::<Shard>().unwrap(), Shard { index: 1, count: 4 });
    for bad in ["4/4", "1/0", "x/2", "3", "-1/2", "1/2/3"] {
        let err = bad.parse::<Shard>().unwrap_err().to_string();
        assert!(err.contains("--shard"), "{bad}: {err}");
    }
    let s = Shard { index: 1, count: 3 };
    let mine: Vec<usize> = (0..10).filter(|i| s.contains(*i)).collect();
    assert_eq!(mine, vec![1, 4, 7]);
}
