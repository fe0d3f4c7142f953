//! The shipped configs in `configs/eliashberg/` parse and validate (first sweep point
//! substituted), and the full Table I (both columns) reproduces the paper (ignored: ~minutes;
//! run with `cargo test --test eliashberg_configs -- --ignored --nocapture`).
use neqkin::engine::model::Model;
use neqkin::models::eliashberg::Eliashberg;

fn load(path: &std::path::Path) -> (toml::Table, serde_json::Value) {
    let text = std::fs::read_to_string(path).unwrap();
    let table: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(table["model"].as_str(), Some("eliashberg"));
    let mut params: serde_json::Value = serde_json::to_value(table["params"].clone()).unwrap();
    if let Some(sweeps) = table.get("sweep").and_then(|s| s.as_array()) {
        for sw in sweeps {
            let name = sw["name"].as_str().unwrap();
            let first = if let Some(v) = sw.get("values") {
                serde_json::to_value(v.as_array().unwrap()[0].clone()).unwrap()
            } else {
                serde_json::to_value(sw["linspace"].as_array().unwrap()[0].clone()).unwrap()
            };
            params[name] = first;
        }
    }
    (table, params)
}

#[test]
fn shipped_configs_validate() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/eliashberg");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "toml") {
            let (_, params) = load(&path);
            Eliashberg.validate(&params).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            // The whole config as the CLI checks it (solver section, every sweep point);
            // table paths are relative to the repository root.
            std::env::set_current_dir(env!("CARGO_MANIFEST_DIR")).unwrap();
            neqkin::config::load_plan(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
    }
    assert!(n >= 5);
}

#[test]
#[ignore = "full Table I with the linear analysis at every row takes minutes"]
fn full_table_one() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/eliashberg/table1.toml");
    let (table, params) = load(&path);
    let temps = table["sweep"].as_array().unwrap()[0]["values"].as_array().unwrap().clone();
    let want_lin = [1.1335, 1.3262, 1.5644, 1.8991, 2.3096, 2.8822, 3.7427, 5.3639, 8.6508];
    let want_z = [1.1333, 1.3253, 1.5644, 1.8980, 2.3094, 2.8820, 3.7416, 5.3642, 8.6517];
    let pts: Vec<serde_json::Value> = temps
        .iter()
        .map(|t| {
            let mut p = params.clone();
            p["temperature"] = serde_json::json!(t.as_float().unwrap());
            p
        })
        .collect();
    let out = Eliashberg.evaluate(&Eliashberg.parse_all(&pts).unwrap()).unwrap().unwrap();
    println!("| T0 | λc linear (ours) | Table I | rel | λc min Z0⁻¹ (ours) | Table I | rel | L |");
    for (i, o) in out.iter().enumerate() {
        let get = |k: &str| o.scalars.iter().find(|x| x.0 == k).unwrap().1;
        let (lz, ll, n) = (get("lambda_c_zinv"), get("lambda_c_linear"), get("grid_points"));
        let (el, ez) = ((ll - want_lin[i]) / want_lin[i], (lz - want_z[i]) / want_z[i]);
        println!(
            "| {:.3} | {ll:.5} | {} | {el:.1e} | {lz:.5} | {} | {ez:.1e} | {n} |",
            temps[i].as_float().unwrap(),
            want_lin[i],
            want_z[i]
        );
        assert!(el.abs() < 1e-3 && ez.abs() < 1e-3);
    }
}
