//! Every figure config in `configs/photoexcited/` holds a valid parameter set at every
//! sweep end point, and its first point builds a batch.

use neqkin::engine::model::Model;
use neqkin::models::photoexcited::Photoexcited;

/// The values a `[[sweep]]` entry visits that we check: all `values`, or the two ends of a
/// `linspace`/`logspace`.
fn sweep_values(s: &toml::Table) -> Vec<toml::Value> {
    if let Some(v) = s.get("values") {
        return v.as_array().unwrap().clone();
    }
    for key in ["linspace", "logspace"] {
        if let Some(v) = s.get(key) {
            let a = v.as_array().unwrap();
            let (lo, hi) = (a[0].as_float().unwrap(), a[1].as_float().unwrap());
            let (lo, hi) = if key == "logspace" { (10f64.powf(lo), 10f64.powf(hi)) } else { (lo, hi) };
            return vec![toml::Value::Float(lo), toml::Value::Float(hi)];
        }
    }
    panic!("sweep without values: {s:?}");
}

#[test]
fn figure_configs_are_valid() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/photoexcited");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let cfg: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(cfg["model"].as_str(), Some("photoexcited"));
        let params = cfg["params"].as_table().unwrap().clone();
        let mut points = vec![params.clone()];
        if let Some(sweeps) = cfg.get("sweep").and_then(|s| s.as_array()) {
            for s in sweeps {
                let s = s.as_table().unwrap();
                let name = s["name"].as_str().unwrap();
                let mut next = Vec::new();
                for p in &points {
                    for v in sweep_values(s) {
                        let mut q = p.clone();
                        q.insert(name.to_string(), v);
                        next.push(q);
                    }
                }
                points = next;
            }
        }
        let json: Vec<serde_json::Value> = points.iter().map(|p| serde_json::to_value(p).unwrap()).collect();
        for p in &json {
            Photoexcited.validate(p).unwrap_or_else(|e| panic!("{}: {e} at {p}", path.display()));
        }
        Photoexcited.build(&Photoexcited.parse_all(&json[..1]).unwrap()).unwrap();
        count += 1;
    }
    assert_eq!(count, 15);
}
