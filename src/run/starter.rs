//! Text for people starting with a model: the parameter table (`neqkin params MODEL`) and
//! a commented starter config (`neqkin init MODEL`), both from [`Model::parameters`] and
//! [`Model::starter`].

use serde_json::Value;

use crate::engine::model::{Model, ParamDefault};

/// The model's parameters as an aligned text table: name, default, unit, range, meaning.
pub fn params_table(model: &dyn Model) -> String {
    let docs = model.parameters();
    let header = ["name", "default", "unit", "range", "meaning"];
    let rows: Vec<[String; 5]> = docs
        .iter()
        .map(|d| [d.name.to_string(), d.default_text(), d.unit.to_string(), d.range.to_string(), d.meaning.to_string()])
        .collect();
    let mut width = header.map(|h| h.chars().count());
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: [&str; 5]| -> String {
        let mut s = String::new();
        for (k, c) in cells.iter().enumerate() {
            if k + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(c);
                s.push_str(&" ".repeat(width[k] - c.chars().count() + 2));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = format!("model `{}`: {} parameters ([params] keys)\n", model.name(), docs.len());
    out.push_str(&line(header));
    for r in &rows {
        out.push_str(&line([&r[0], &r[1], &r[2], &r[3], &r[4]]));
    }
    out
}

/// A JSON value written as a TOML value (numbers, strings, booleans, arrays, inline tables).
pub fn toml_value(v: &Value) -> String {
    match v {
        Value::Null => "\"\"".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        // JSON string escapes are valid in TOML basic strings.
        Value::String(s) => Value::String(s.clone()).to_string(),
        Value::Array(a) => format!("[{}]", a.iter().map(toml_value).collect::<Vec<_>>().join(", ")),
        Value::Object(m) => {
            format!(
                "{{ {} }}",
                m.iter().map(|(k, x)| format!("{k} = {}", toml_value(x))).collect::<Vec<_>>().join(", ")
            )
        }
    }
}

/// A commented starter config for `model` that `neqkin run` accepts as it is: the model's
/// starter run, with every other parameter listed as a comment (default, unit, range,
/// meaning).
pub fn init_toml(model: &dyn Model) -> String {
    let name = model.name();
    let starter = model.starter();
    let docs = model.parameters();
    let mut s = String::new();
    s.push_str(&format!("# neqkin starter config for model `{name}`: {}.\n", starter.what));
    s.push_str(&format!("# Run it with `neqkin run {name}.toml`; `neqkin params {name}` explains every parameter.\n"));
    s.push_str("# Each parameter: a comment `meaning [unit; allowed range]`, then the key; `# key = value`\n");
    s.push_str("# lines show the default (uncomment to change it).\n");
    s.push_str(&format!("model = \"{name}\"\n\n[solver]\n{}\n\n[params]\n", starter.solver.trim_end()));
    let note = |unit: &str, range: &str, meaning: &str| format!("# {meaning} [{unit}; {range}]");
    for d in &docs {
        let set = starter.params.iter().find(|(k, _)| *k == d.name);
        let line = match (set, &d.default) {
            (Some((_, v)), _) => format!("{} = {}", d.name, toml_value(v)),
            (None, ParamDefault::Value(v)) => format!("# {} = {}", d.name, toml_value(v)),
            (None, ParamDefault::Unset(why)) => format!("# {} =   (unset: {why})", d.name),
            (None, ParamDefault::Required) => format!("{} =   # REQUIRED", d.name),
        };
        s.push_str(&format!("{}\n{line}\n", note(d.unit, d.range, d.meaning)));
    }
    for (k, v) in &starter.params {
        if !docs.iter().any(|d| d.name == *k) {
            s.push_str(&format!("{k} = {}\n", toml_value(v)));
        }
    }
    if let Some((axis, values)) = &starter.sweep {
        let values: Vec<String> = values.iter().map(|x| toml_value(&Value::from(*x))).collect();
        s.push_str(&format!(
            "\n# One sweep axis; add more [[sweep]] tables for a Cartesian product (last axis fastest).\n\
             [[sweep]]\nname = \"{axis}\"\nvalues = [{}]\n",
            values.join(", ")
        ));
    }
    s.push_str("\n[output]\narrays = true      # save the model's arrays in results.zarr\nbatch_size = 0     # 0 = automatic\n");
    s
}
