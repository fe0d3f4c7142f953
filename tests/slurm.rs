//! `neqkin slurm`: the job array + merge scripts, run by hand (every machine) and on a real
//! Slurm (`.ci/slurm-up` starts a single-node one; CI sets `NEQKIN_REQUIRE_SLURM=1`).
//!
//! The Slurm test submits a 32-point sweep as 4 array tasks plus the merge job, requeues
//! one task mid-run (`scontrol requeue`: SIGTERM, the task stops after its batch in
//! flight and starts again), SIGKILLs the neqkin process of another (the task fails, the
//! merge job is cancelled by `--kill-on-invalid-dep`), resubmits with the same command,
//! and checks the merged dataset equals a single-process run byte for byte.
//!
//! Files compared byte for byte: `results.csv`, `progress.txt`, every file under
//! `results.zarr/`. `meta.json` differs by design: the merge records `merged` (its time),
//! `shards` (each shard's folder, sessions, batches and backend) and `points_missing`, and
//! has empty `batches`/`sessions` and no `started`/`finished`; the fields that describe
//! what was computed (`config`, `resolved`, `fingerprint`, `points_total`, `complete`)
//! are compared.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_neqkin");

/// 32 points (16 rates × 2 targets), one point per batch, each point ~0.1 s of CPU
/// (tight tolerances, 4000 cells): 8 points per shard of 4, so a task can be caught
/// between its first and last point.
const SWEEP: &str = r#"
model = "relaxation"
title = "slurm test sweep"
[solver]
method = "dopri5"
t_end = 50.0
n_outputs = 3
rtol = 1e-13
atol = 1e-15
[params]
grid_points = 4000
initial = 2.0
[[sweep]]
name = "rate"
linspace = [0.1, 2.0, 16]
[[sweep]]
name = "target"
values = [0.0, 1.0]
[output]
batch_size = 1
"#;

/// A smaller sweep for the tests without Slurm.
const SMALL: &str = r#"
model = "relaxation"
[solver]
method = "dopri5"
t_end = 1.0
n_outputs = 3
[params]
grid_points = 16
[[sweep]]
name = "rate"
linspace = [0.1, 2.0, 6]
[output]
batch_size = 2
"#;

fn neqkin_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("NEQKIN_TEST_ABORT_AFTER_BATCHES")
        .output()
        .expect("run neqkin")
}

fn text(o: &Output) -> String {
    format!("stdout: {}\nstderr: {}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn ok(o: &Output) {
    assert_eq!(o.status.code(), Some(0), "{}", text(o));
}

/// Every file of a dataset folder except `meta.json` and hidden files, as (relative
/// path, bytes), sorted.
fn dataset_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with('.') {
                continue;
            }
            if p.is_dir() {
                walk(root, &p, out);
            } else if p.strip_prefix(root).unwrap() != Path::new("meta.json") {
                out.push((p.strip_prefix(root).unwrap().display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut v = Vec::new();
    walk(dir, dir, &mut v);
    v.sort();
    v
}

/// The merged folder equals the single-process one byte for byte (meta.json: the
/// fields that say what was computed).
fn assert_same_dataset(merged: &Path, full: &Path) {
    let (a, b) = (dataset_files(merged), dataset_files(full));
    let names = |v: &[(String, Vec<u8>)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&a), names(&b), "file lists differ");
    assert!(a.iter().any(|(n, _)| n == "results.csv") && a.len() > 2);
    for ((n, x), (_, y)) in a.iter().zip(&b) {
        assert!(x == y, "{n} differs between {} and {}", merged.display(), full.display());
    }
    let meta = |d: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(d.join("meta.json")).unwrap()).unwrap()
    };
    let (m, f) = (meta(merged), meta(full));
    for k in ["config", "resolved", "fingerprint", "points_total", "complete"] {
        assert_eq!(m[k], f[k], "meta.json field {k}");
    }
    assert_eq!(m["complete"], true);
}

fn lines(p: &Path) -> usize {
    std::fs::read_to_string(p).map(|t| t.lines().filter(|l| !l.trim().is_empty()).count()).unwrap_or(0)
}

#[test]
fn scripts_run_by_hand_equal_the_single_process_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("small.toml"), SMALL).unwrap();
    ok(&neqkin_in(dir, &["run", "small.toml", "--out", "full", "--backend", "cpu"]));

    // Default: writes the job folder, prints the two sbatch commands, submits nothing.
    let o = neqkin_in(dir, &["slurm", "small.toml", "--shards", "3", "--partition", "short", "--time", "0:05:00"]);
    ok(&o);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let job = dir.join("results/small.slurm");
    let cmds: Vec<&str> = stdout.lines().collect();
    assert_eq!(cmds.len(), 2, "{}", text(&o));
    assert_eq!(cmds[0], format!("sbatch --parsable {}", job.join("array.sbatch").display()));
    assert!(cmds[1].contains("--dependency=afterok:") && cmds[1].ends_with("merge.sbatch"), "{}", cmds[1]);
    assert!(!dir.join("results/small").exists(), "the merged folder is made by the merge job only");
    let array = std::fs::read_to_string(job.join("array.sbatch")).unwrap();
    for line in [
        "#SBATCH --array=0-2",
        "#SBATCH --requeue",
        "#SBATCH --partition=short",
        "#SBATCH --time=0:05:00",
        &format!("#SBATCH --chdir={}", dir.display()),
        &format!("NEQKIN={BIN}"),
    ] {
        assert!(array.lines().any(|l| l == line), "array.sbatch lacks `{line}`:\n{array}");
    }
    assert!(array.contains("--resume"), "{array}");
    let merge = std::fs::read_to_string(job.join("merge.sbatch")).unwrap();
    assert!(merge.contains("#SBATCH --kill-on-invalid-dep=yes"), "{merge}");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(job.join("job.json")).unwrap()).unwrap();
    assert_eq!(record["shards"], 3);
    assert_eq!(record["config_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(std::fs::read_to_string(job.join("small.toml")).unwrap(), SMALL, "the config is copied verbatim");

    // The scripts run outside Slurm too (task id set by hand): each task twice (the
    // second resumes and has nothing to do), then the merge.
    for i in 0..3 {
        for attempt in 0..2 {
            let o = Command::new("bash")
                .arg(job.join("array.sbatch"))
                .current_dir(dir)
                .env("SLURM_ARRAY_TASK_ID", i.to_string())
                .env("SLURM_RESTART_COUNT", attempt.to_string())
                .output()
                .unwrap();
            ok(&o);
            let e = String::from_utf8_lossy(&o.stderr);
            let want = if attempt == 0 { "(0 skipped" } else { "0 of 2 points" };
            assert!(e.contains(want), "task {i} attempt {attempt}: {}", text(&o));
        }
    }
    ok(&Command::new("bash").arg(job.join("merge.sbatch")).current_dir(dir).output().unwrap());
    assert_same_dataset(&dir.join("results/small"), &dir.join("full"));

    // An edit of the copy after submission is refused by the task (exit 2), not run.
    std::fs::write(job.join("small.toml"), SMALL.replace("t_end = 1.0", "t_end = 2.0")).unwrap();
    let o = Command::new("bash").arg(job.join("array.sbatch")).env("SLURM_ARRAY_TASK_ID", "0").output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("changed since submission"), "{}", text(&o));
    std::fs::write(job.join("small.toml"), SMALL).unwrap();

    // The same command again reuses the job folder (resubmission); another config or
    // shard count is refused, naming what differs, and writes nothing.
    ok(&neqkin_in(dir, &["slurm", "small.toml", "--shards", "3"]));
    let o = neqkin_in(dir, &["slurm", "small.toml", "--shards", "2"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--shards 3, not 2"), "{}", text(&o));
    std::fs::write(dir.join("small.toml"), SMALL.replace("6]", "7]")).unwrap();
    let o = neqkin_in(dir, &["slurm", "small.toml", "--shards", "3"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("config sha256"), "{}", text(&o));

    // Usage errors: exit 2, nothing created.
    for (args, needle) in [
        (vec!["slurm", "small.toml", "--shards", "8", "--out", "x"], "--shards"),
        (vec!["slurm", "small.toml", "--shards", "0", "--out", "x"], "--shards"),
        (vec!["slurm", "small.toml", "--shards", "2", "--out", "x", "--time", "1 hour"], "--time"),
        (vec!["slurm", "small.toml", "--shards", "2", "--out", "x", "--sbatch-arg", "qos=long"], "--sbatch-arg"),
        (vec!["slurm", "small.toml", "--shards", "2", "--out", "x y"], "--out"),
        (vec!["slurm", "small.toml", "--shards", "2", "--out", "full"], "full"),
        (vec!["slurm", "missing.toml", "--shards", "2", "--out", "x"], "missing.toml"),
    ] {
        let o = neqkin_in(dir, &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(String::from_utf8_lossy(&o.stderr).contains(needle), "{args:?} should name {needle}: {}", text(&o));
        assert!(
            !dir.join("x").exists() && !dir.join("x.slurm").exists() && !dir.join("x y.slurm").exists(),
            "{args:?}"
        );
        assert!(!dir.join("full.slurm").exists(), "{args:?}");
    }
}

/// Whether a Slurm controller and an idle/usable node answer here.
fn slurm_available() -> Result<(), String> {
    let out = |cmd: &str, args: &[&str]| -> Result<String, String> {
        let o = Command::new(cmd).args(args).output().map_err(|e| format!("{cmd}: {e}"))?;
        if !o.status.success() {
            return Err(format!("{cmd} {args:?}: {}", String::from_utf8_lossy(&o.stderr).trim()));
        }
        Ok(String::from_utf8_lossy(&o.stdout).to_string())
    };
    out("sbatch", &["--version"])?;
    let ping = out("scontrol", &["ping"])?;
    if !ping.contains("UP") {
        return Err(format!("scontrol ping: {}", ping.trim()));
    }
    let nodes = out("sinfo", &["-h", "-o", "%t"])?;
    if !nodes.lines().any(|s| s.starts_with("idle") || s.starts_with("mix") || s.starts_with("alloc")) {
        return Err(format!(
            "no usable node (sinfo states: {})",
            nodes.split_whitespace().collect::<Vec<_>>().join(" ")
        ));
    }
    Ok(())
}

fn squeue(ids: &str) -> String {
    let o = Command::new("squeue").args(["-h", "-o", "%i %T %r", "-j", ids]).output().unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn wait_gone(ids: &str, what: &str, job: &Path) {
    let t0 = Instant::now();
    loop {
        let q = squeue(ids);
        if q.is_empty() {
            return;
        }
        if t0.elapsed() > Duration::from_secs(300) {
            panic!("{what}: jobs {ids} still queued after 300 s:\n{q}\n{}", logs(job));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn logs(job: &Path) -> String {
    let mut s = String::new();
    if let Ok(rd) = std::fs::read_dir(job.join("logs")) {
        let mut names: Vec<PathBuf> = rd.map(|e| e.unwrap().path()).collect();
        names.sort();
        for p in names {
            s += &format!("== {}\n{}\n", p.display(), std::fs::read_to_string(&p).unwrap_or_default());
        }
    }
    s
}

/// Pid of the neqkin process running shard `i` of `job` (from /proc).
fn shard_pid(job: &Path, i: usize) -> Option<i32> {
    let needle = format!("{}", job.join("shards").join(i.to_string()).display());
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else { continue };
        let args: Vec<String> = cmd.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).to_string()).collect();
        if args.first().is_some_and(|a| a == BIN)
            && args.iter().any(|a| *a == needle)
            && args.iter().any(|a| a == "run")
        {
            return Some(pid);
        }
    }
    None
}

#[test]
fn slurm_array_with_requeue_kill_and_resubmit_equals_a_single_process_run() {
    if let Err(why) = slurm_available() {
        if std::env::var("NEQKIN_REQUIRE_SLURM").is_ok_and(|v| v == "1") {
            panic!("NEQKIN_REQUIRE_SLURM=1 but Slurm is not usable here: {why} (.ci/slurm-up starts it)");
        }
        eprintln!(
            "\n*** SKIPPED slurm_array_with_requeue_kill_and_resubmit_equals_a_single_process_run: no usable Slurm \
             ({why}). As root, .ci/slurm-up starts a single-node one; CI sets NEQKIN_REQUIRE_SLURM=1. ***\n"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("sweep.toml"), SWEEP).unwrap();
    let full = dir.join("full");
    let o = Command::new(BIN)
        .args(["run", "sweep.toml", "--out", "full", "--backend", "cpu"])
        .current_dir(dir)
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap();
    ok(&o);

    let submit = || {
        let o = neqkin_in(
            dir,
            &["slurm", "sweep.toml", "--shards", "4", "--out", "merged", "--time", "0:10:00", "--submit"],
        );
        ok(&o);
        let s = String::from_utf8_lossy(&o.stdout).to_string();
        // "array job 12 (4 tasks: ...), merge job 13 (after 12 succeeds)"
        let word_after = |key: &str| s.split(key).nth(1).and_then(|r| r.split_whitespace().next()).map(str::to_string);
        let (a, m) = (word_after("array job "), word_after("merge job "));
        (a.unwrap_or_else(|| panic!("no array id in {s}")), m.unwrap_or_else(|| panic!("no merge id in {s}")))
    };
    let (array, merge) = submit();
    let job = dir.join("merged.slurm");
    eprintln!("submitted array {array}, merge {merge}:\n{}", squeue(&format!("{array},{merge}")));

    // Catch two tasks between their first and last point: requeue one (SIGTERM, it stops
    // after the batch in flight and is started again by Slurm), SIGKILL the neqkin of the
    // other (the task fails; the merge job is cancelled).
    let per_shard = 8;
    let (mut requeued, mut killed) = (None, None);
    let t0 = Instant::now();
    while (requeued.is_none() || killed.is_none()) && t0.elapsed() < Duration::from_secs(240) {
        for i in 0..4 {
            if requeued == Some(i) || killed == Some(i) {
                continue;
            }
            let done = lines(&job.join("shards").join(i.to_string()).join("progress.txt"));
            if done == 0 || done >= per_shard - 1 {
                continue;
            }
            if requeued.is_none() {
                let o = Command::new("scontrol").args(["requeue", &format!("{array}_{i}")]).output().unwrap();
                assert!(o.status.success(), "scontrol requeue: {}", text(&o));
                eprintln!("requeued task {array}_{i} after {done} of {per_shard} points");
                requeued = Some(i);
            } else if killed.is_some() {
                break;
            } else if let Some(pid) = shard_pid(&job, i) {
                let o = Command::new("kill").args(["-KILL", &pid.to_string()]).output().unwrap();
                assert!(o.status.success(), "kill: {}", text(&o));
                eprintln!("killed neqkin (pid {pid}) of task {array}_{i} after {done} of {per_shard} points");
                killed = Some(i);
            }
        }
        if squeue(&array).is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let (Some(requeued), Some(killed)) = (requeued, killed) else {
        panic!(
            "could not catch two tasks mid-run (requeued {requeued:?}, killed {killed:?}); the sweep is too short \
             for this machine\n{}",
            logs(&job)
        );
    };
    // The killed task fails, so the merge can never run: Slurm cancels it.
    wait_gone(&format!("{array},{merge}"), "first submission", &job);
    assert!(
        !dir.join("merged").join("results.csv").exists(),
        "the merge must not run after a failed task\n{}",
        logs(&job)
    );

    // Resubmitting with the same command: every task resumes its shard, then the merge runs.
    let (array2, merge2) = submit();
    eprintln!("resubmitted: array {array2}, merge {merge2}");
    wait_gone(&format!("{array2},{merge2}"), "resubmission", &job);
    let log = logs(&job);
    eprintln!("{log}");
    assert!(dir.join("merged/results.csv").exists(), "no merged dataset\n{log}");
    assert_same_dataset(&dir.join("merged"), &full);

    // The requeued and the killed task resumed their shards rather than starting over.
    let shard_log = |i: usize| std::fs::read_to_string(job.join("logs").join(format!("shard_{i}.log"))).unwrap();
    assert!(shard_log(requeued).contains("attempt 2"), "task {requeued} was not requeued:\n{log}");
    for i in [requeued, killed] {
        let meta: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(job.join("shards").join(i.to_string()).join("meta.json")).unwrap(),
        )
        .unwrap();
        let sessions = meta["sessions"].as_array().unwrap();
        assert!(sessions.len() >= 2, "shard {i}: {sessions:?}");
        assert_eq!(sessions[1]["resumed"], true, "shard {i}: {sessions:?}");
    }
    let resumed_with_work = shard_log(requeued)
        .lines()
        .chain(shard_log(killed).lines())
        .filter(|l| l.contains("skipped as already done") && !l.contains("(0 skipped"))
        .count();
    assert!(resumed_with_work >= 2, "both interrupted shards must skip their finished points:\n{log}");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(job.join("job.json")).unwrap()).unwrap();
    assert_eq!(record["submissions"].as_array().unwrap().len(), 2);
}
