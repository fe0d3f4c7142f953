//! Parameter metadata (`Model::parameters`) and starter configs (`Model::starter`,
//! `neqkin init`): every key a model accepts is documented and nothing else; every
//! documented default validates and is the default the model really uses; every starter
//! config `neqkin init` prints loads through `config::load_plan` as it is.

use std::collections::BTreeSet;
use std::process::Command;

use neqkin::config::SolverPlan;
use neqkin::engine::model::{Model, ParamDefault};
use neqkin::models::registry;
use neqkin::run::starter;
use serde_json::{Map, Value};

const BIN: &str = env!("CARGO_BIN_EXE_neqkin");

/// The keys a model accepts, read from its error for an unknown key: serde's
/// "expected one of `a`, `b`" or the models' own "(known: a, b)".
fn accepted_keys(model: &dyn Model) -> BTreeSet<String> {
    let e = model.validate(&serde_json::json!({ "zz_not_a_parameter": 1.0 })).unwrap_err().to_string();
    let keys: BTreeSet<String> = if let Some(rest) = e.split("expected one of").nth(1) {
        rest.split('`').skip(1).step_by(2).map(str::to_string).collect()
    } else if let Some(rest) = e.split("known: ").nth(1) {
        rest.split(')').next().unwrap().split(',').map(|k| k.trim().to_string()).collect()
    } else {
        panic!("{}: cannot read the accepted keys from: {e}", model.name())
    };
    assert!(keys.len() >= 3, "{}: only {keys:?} read from {e}", model.name());
    keys
}

fn starter_params(model: &dyn Model) -> Map<String, Value> {
    model.starter().params.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

#[test]
fn every_accepted_key_is_documented_and_nothing_else() {
    for m in registry() {
        let docs = m.parameters();
        let documented: BTreeSet<String> = docs.iter().map(|d| d.name.to_string()).collect();
        assert_eq!(documented.len(), docs.len(), "{}: a parameter is documented twice", m.name());
        assert_eq!(accepted_keys(&*m), documented, "{}: accepted keys vs documented keys", m.name());
        for d in &docs {
            for (what, text) in [("unit", d.unit), ("range", d.range), ("meaning", d.meaning)] {
                assert!(!text.trim().is_empty(), "{}.{}: empty {what}", m.name(), d.name);
            }
        }
        for (k, _) in m.starter().params {
            assert!(documented.contains(k), "{}: starter sets undocumented `{k}`", m.name());
        }
    }
}

/// Each documented default validates, and setting a key to it changes nothing: the
/// built batch (parameter block, tables, initial state, first right-hand side) or the
/// direct evaluation is identical with the key absent and with the key at its default.
#[test]
fn documented_defaults_validate_and_are_the_real_defaults() {
    for m in registry() {
        let base = starter_params(&*m);
        let direct = m.starter().solver.contains("\"direct\"");
        let mut checked = 0;
        for d in m.parameters() {
            let ParamDefault::Value(default) = &d.default else { continue };
            let mut absent = base.clone();
            absent.remove(d.name);
            let mut given = absent.clone();
            given.insert(d.name.to_string(), default.clone());
            let (absent, given) = (Value::Object(absent), Value::Object(given));
            let absent = m.parse(&absent).unwrap_or_else(|e| panic!("{}: starter without `{}`: {e}", m.name(), d.name));
            let given = m.parse(&given).unwrap_or_else(|e| panic!("{}.{} = {default}: {e}", m.name(), d.name));
            if direct {
                let a = m.evaluate(std::slice::from_ref(&absent)).unwrap().unwrap();
                let g = m.evaluate(std::slice::from_ref(&given)).unwrap().unwrap();
                let bits = |o: &[neqkin::engine::model::Observables]| -> Vec<(String, u64)> {
                    o[0].scalars.iter().map(|(n, v)| (n.clone(), v.to_bits())).collect()
                };
                assert_eq!(bits(&a), bits(&g), "{}.{}: documented default {default} differs", m.name(), d.name);
            } else {
                let a = m.build(std::slice::from_ref(&absent)).unwrap();
                let g = m.build(std::slice::from_ref(&given)).unwrap();
                let same = |x: &[f64], y: &[f64]| {
                    x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits())
                };
                let rhs = |p: &std::sync::Arc<dyn neqkin::engine::model::BatchProblem>| -> Vec<f64> {
                    let l = p.layout();
                    let y = p.initial_state();
                    let mut dy = vec![0.0; l.state_len];
                    let mut scratch = vec![0.0; l.scratch_len];
                    let tables = &p.tables()[..l.table_len];
                    p.rhs_member(0, &p.params()[..l.params_len], tables, 0.0, &y[..l.state_len], &mut dy, &mut scratch);
                    dy
                };
                let (ya, yg) = (a.initial_state(), g.initial_state());
                let (fa, fg) = if a.layout() == g.layout() { (rhs(&a), rhs(&g)) } else { (vec![0.0], vec![1.0]) };
                assert!(
                    same(a.params(), g.params()) && same(a.tables(), g.tables()) && same(&ya, &yg) && same(&fa, &fg),
                    "{}.{}: documented default {default} is not what the model uses",
                    m.name(),
                    d.name
                );
            }
            checked += 1;
        }
        assert!(checked > 0, "{}: no documented default checked", m.name());
    }
}

/// `neqkin init MODEL` prints a config that loads as it is, sets every required
/// parameter, and lists every other one; `neqkin params MODEL` lists every parameter.
#[test]
fn init_prints_a_loadable_starter_for_every_model() {
    let tmp = tempfile::tempdir().unwrap();
    for m in registry() {
        let o = Command::new(BIN).args(["init", m.name()]).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
        let text = String::from_utf8(o.stdout).unwrap();
        assert_eq!(text, starter::init_toml(&*m));
        let path = tmp.path().join(format!("{}.toml", m.name()));
        std::fs::write(&path, &text).unwrap();
        let (plan, model) =
            neqkin::config::load_plan(&path).unwrap_or_else(|e| panic!("neqkin init {}: {e}\n{text}", m.name()));
        assert_eq!(model.name(), m.name());
        assert!(plan.n_points() >= 1);
        assert_eq!(matches!(plan.solver, SolverPlan::Direct), m.starter().solver.contains("\"direct\""));
        for d in m.parameters() {
            assert!(text.contains(&format!("{} =", d.name)), "{}: init lacks `{}`", m.name(), d.name);
            if d.default == ParamDefault::Required {
                assert!(
                    text.lines().any(|l| l.starts_with(&format!("{} = ", d.name)) && !l.contains("REQUIRED")),
                    "{}: required `{}` is not set by the starter",
                    m.name(),
                    d.name
                );
            }
        }
        let o = Command::new(BIN).args(["params", m.name()]).output().unwrap();
        assert_eq!(o.status.code(), Some(0));
        let table = String::from_utf8(o.stdout).unwrap();
        for d in m.parameters() {
            assert!(
                table.lines().any(|l| l.starts_with(&format!("{} ", d.name))),
                "params {}: no `{}`",
                m.name(),
                d.name
            );
        }
    }
    let o = Command::new(BIN).args(["init", "no_such_model"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown model"));
}
