//! Every shipped config runs to its end (issue 10, item 3).
//!
//! A config that only validates can still never finish (the cavity Fig 3 g = 0.001 point
//! once took > 880 s on DOPRI5) or finish with a point `failed`. This test runs each file
//! under `configs/` with the `neqkin` binary on the CPU backend, with every sweep axis cut
//! to its two end values — the extreme points are where the stiff, underflowing or slow
//! kinds live (g = 0.001, the largest window, the lowest temperature) — and everything
//! else (grid, t_end, tolerances, n_outputs, method) as shipped. It checks that the run
//! exits 0, that every point's last row has a final status (`reached`, `steady` or the
//! model's own `stopped`) and reached `t_end` where the status says so, and that it
//! stays inside a wall-time budget; a run past its hard limit is killed and fails the
//! test instead of hanging CI. The table of wall times is written to the real stderr, past
//! the harness's capture, so CI logs show it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Budget per config (seconds): printed next to the measured time, and the point past
/// which a config counts as "does not finish".
const BUDGET_S: f64 = 300.0;

/// Configs whose points above an instability are meant to end `failed` (the left-hand
/// matrix of the Eliashberg kinetic equation turns singular: the run cannot continue, and
/// says so), with a word their message must contain. Exit code 1 (some points failed) is
/// expected for them; any other failure, or a failure without that reason, is not.
const EXPECTED_FAILURES: &[(&str, &str)] =
    &[("eliashberg/kinetic.toml", "pivot"), ("eliashberg/kinetic_bdf.toml", "pivot")];

fn configs() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("configs")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "toml") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The two end values of an axis (one if it has one value).
fn ends(axis: &toml::Table) -> Vec<f64> {
    let num = |v: &toml::Value| v.as_float().or_else(|| v.as_integer().map(|i| i as f64)).unwrap();
    let all: Vec<f64> = if let Some(v) = axis.get("values") {
        v.as_array().unwrap().iter().map(num).collect()
    } else {
        let spec = axis.get("linspace").or_else(|| axis.get("logspace")).expect("axis with values/linspace/logspace");
        let s: Vec<f64> = spec.as_array().unwrap().iter().map(num).collect();
        if s[2] as usize >= 2 {
            vec![s[0], s[1]]
        } else {
            vec![s[0]]
        }
    };
    let mut e = vec![all[0]];
    if all.len() > 1 && all[all.len() - 1] != all[0] {
        e.push(all[all.len() - 1]);
    }
    e
}

/// The config with every sweep axis cut to its end values.
fn reduced(path: &Path) -> (String, usize) {
    let mut cfg: toml::Table = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut points = 1;
    if let Some(toml::Value::Array(axes)) = cfg.get_mut("sweep") {
        for axis in axes.iter_mut() {
            let t = axis.as_table_mut().unwrap();
            let e = ends(t);
            points *= e.len();
            t.remove("linspace");
            t.remove("logspace");
            t.insert("values".into(), toml::Value::Array(e.into_iter().map(toml::Value::Float).collect()));
        }
    }
    (toml::to_string(&cfg).unwrap(), points)
}

struct Outcome {
    name: String,
    points: usize,
    wall: f64,
    problem: Option<String>,
}

fn run_one(path: &Path, work: &Path) -> Outcome {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let name = path.strip_prefix(root.join("configs")).unwrap().display().to_string();
    let (text, points) = reduced(path);
    let expected = EXPECTED_FAILURES.iter().find(|(n, _)| *n == name).map(|(_, why)| *why);
    let stem = name.replace(['/', '.'], "_");
    let cfg = work.join(format!("{stem}.toml"));
    std::fs::write(&cfg, text).unwrap();
    let out = work.join(&stem);
    let start = Instant::now();
    // Relative data paths in configs (DoS and α²F tables) are relative to the repository root.
    let mut child = Command::new(env!("CARGO_BIN_EXE_neqkin"))
        .current_dir(&root)
        .args(["run", cfg.to_str().unwrap(), "--backend", "cpu", "--out", out.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let hard_limit = Duration::from_secs_f64(3.0 * BUDGET_S);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if start.elapsed() > hard_limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let wall = start.elapsed().as_secs_f64();
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut stderr);
    }
    let problem = match status {
        None => Some(format!("did not finish within {:.0} s (killed)", hard_limit.as_secs_f64())),
        Some(s) if s.success() || (expected.is_some() && s.code() == Some(1)) => {
            check_results(&out, points, expected).err()
        }
        Some(s) => Some(format!("exit {:?}: {}", s.code(), stderr.trim())),
    }
    .or_else(|| (wall > BUDGET_S).then(|| format!("over the budget: {wall:.1} s > {BUDGET_S} s")));
    Outcome { name, points, wall, problem }
}

/// Every point has rows, and its last row has a final status.
fn check_results(out: &Path, points: usize, expected_failure: Option<&str>) -> Result<(), String> {
    let text = std::fs::read_to_string(out.join("results.csv")).map_err(|e| format!("results.csv: {e}"))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().ok_or("results.csv is empty")?.split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).ok_or(format!("results.csv has no `{n}` column"));
    let (c_point, c_output, c_status, c_t, c_reached, c_message) =
        (col("point")?, col("output")?, col("status")?, col("t")?, col("t_reached")?, col("message")?);
    // point → (output, status, t, t_reached, message) of its last output row.
    let mut last: std::collections::BTreeMap<usize, (usize, String, f64, f64, String)> = Default::default();
    for line in lines {
        // The message is the last column and may hold commas (quoted).
        let f: Vec<&str> = line.splitn(header.len(), ',').collect();
        let p: usize = f[c_point].parse().map_err(|_| format!("bad point index in `{line}`"))?;
        let o: usize = f[c_output].parse().map_err(|_| format!("bad output index in `{line}`"))?;
        let row = (
            o,
            f[c_status].to_string(),
            f[c_t].parse().unwrap_or(f64::NAN),
            f[c_reached].parse().unwrap_or(f64::NAN),
            f.get(c_message).unwrap_or(&"").to_string(),
        );
        if last.get(&p).is_none_or(|r| r.0 <= o) {
            last.insert(p, row);
        }
    }
    if last.len() != points {
        return Err(format!("{} of {points} points have rows", last.len()));
    }
    for (p, (o, st, t, reached, message)) in &last {
        match st.as_str() {
            "failed" if expected_failure.is_some_and(|w| message.contains(w)) => {}
            "steady" | "stopped" => {}
            "reached" if (reached - t).abs() <= 1e-9 * t.abs().max(1.0) => {}
            "reached" => return Err(format!("point {p} output {o}: status reached but t_reached {reached} ≠ t {t}")),
            other => return Err(format!("point {p} ends with status `{other}` at output {o} (t_reached {reached})")),
        }
    }
    Ok(())
}

#[test]
fn every_shipped_config_runs_to_its_end() {
    let work = tempfile::tempdir().unwrap();
    let all = configs();
    assert!(all.len() >= 40, "expected every shipped config, found {}", all.len());
    let mut outcomes = Vec::new();
    for path in &all {
        let o = run_one(path, work.path());
        let _ = writeln!(
            std::io::stderr().lock(),
            "shipped config {:<45} {:>3} points {:>8.2} s (budget {BUDGET_S:.0} s) {}",
            o.name,
            o.points,
            o.wall,
            o.problem.as_deref().unwrap_or("ok")
        );
        outcomes.push(o);
    }
    let total: f64 = outcomes.iter().map(|o| o.wall).sum();
    let _ = writeln!(std::io::stderr().lock(), "shipped configs: {} files, {total:.1} s in all", outcomes.len());
    let bad: Vec<String> =
        outcomes.iter().filter_map(|o| o.problem.as_ref().map(|p| format!("{}: {p}", o.name))).collect();
    assert!(bad.is_empty(), "shipped configs that do not run to their end:\n{}", bad.join("\n"));
}
