//! Safe use of an output folder (issue 11, item 3), through the real binary: the lock
//! (a concurrent `--resume`, two overlapping plain runs, a stale lock), a kill at every
//! file-system write followed by `--resume`, resume checks (torn progress line, lost
//! rows, truncated or missing shards of `results.zarr` and a damaged shared grid, duplicated rows, a `dos_table` whose
//! content changed), `--force` on a folder neqkin did not make, `merge` refusals, and
//! SIGTERM. Each case is one of the failures listed in the issue.
//!
//! `NEQKIN_TEST_BIN` runs the battery against another build of the binary (to show that
//! the cases fail without the fixes).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> String {
    std::env::var("NEQKIN_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_neqkin").to_string())
}

/// 6 points in batches of 2 (3 batches), 2 output times, arrays (`y` per point, one shard
/// for all six; shared `grid_x`): a few milliseconds a run.
const SMALL: &str = r#"
model = "relaxation"
[solver]
method = "dopri5"
t_end = 1.0
n_outputs = 2
rtol = 1e-8
atol = 1e-10
[params]
grid_points = 8
initial = 2.0
[[sweep]]
name = "rate"
values = [0.5, 1.0, 2.0]
[[sweep]]
name = "target"
values = [0.0, 1.0]
[output]
batch_size = 2
"#;

/// 40 points of one batch each, about 5 ms of CPU apiece (long enough to act on a
/// running process).
const SLOW: &str = r#"
model = "relaxation"
[solver]
method = "rk4"
dt = 0.001
t_end = 1.0
[params]
grid_points = 500
[[sweep]]
name = "rate"
linspace = [0.1, 2.0, 40]
[output]
arrays = false
batch_size = 1
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn cmd(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(bin());
    c.args(args).env_remove("NEQKIN_TEST_ABORT_AFTER_BATCHES").env_remove("NEQKIN_TEST_FAULT_AT");
    if args.first() == Some(&"run") && !args.contains(&"--backend") {
        c.args(["--backend", "cpu"]);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

fn neqkin(args: &[&str], env: &[(&str, &str)]) -> Output {
    cmd(args, env).output().expect("run neqkin")
}

fn spawn(args: &[&str]) -> Child {
    cmd(args, &[]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("spawn neqkin")
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[track_caller]
fn code(o: &Output, want: i32) {
    assert_eq!(o.status.code(), Some(want), "stderr: {}", err(o));
}

/// Sorted (relative path, bytes) of every file under `results.zarr/` (temporary files
/// included, so that a stray one fails the comparison).
fn arrays(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        let Ok(it) = std::fs::read_dir(dir) else { return };
        for e in it {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push((p.strip_prefix(root).unwrap().display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut v = Vec::new();
    walk(&dir.join("results.zarr"), &dir.join("results.zarr"), &mut v);
    v.sort();
    v
}

/// The point indices in `progress.txt` (first field of each complete line).
fn progress_points(dir: &Path) -> BTreeSet<usize> {
    read(&dir.join("progress.txt"))
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// The folder holds exactly the results of the uninterrupted run `full`.
#[track_caller]
fn same_results(out: &Path, full: &Path) {
    assert_eq!(read(&out.join("results.csv")), read(&full.join("results.csv")), "results.csv of {}", out.display());
    let (a, b) = (arrays(out), arrays(full));
    let names = |v: &[(String, Vec<u8>)]| v.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&a), names(&b), "array files of {}", out.display());
    assert!(a == b, "array contents of {}", out.display());
    assert_eq!(progress_points(out), progress_points(full));
    let meta: serde_json::Value = serde_json::from_str(&read(&out.join("meta.json"))).unwrap();
    assert_eq!(meta["complete"], true);
}

fn full_run(tmp: &Path, cfg: &Path, name: &str) -> PathBuf {
    let out = tmp.join(name);
    code(&neqkin(&["run", s(cfg), "--out", s(&out)], &[]), 0);
    out
}

fn wait_for_progress(child: &mut Child, progress: &Path, lines: usize) {
    let start = Instant::now();
    while std::fs::read_to_string(progress).map_or(true, |t| t.lines().count() < lines) {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before {lines} points were done");
        assert!(start.elapsed() < Duration::from_secs(60), "no progress in 60 s");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Issue: "a run, plus a --resume started into its folder 5 s later and killed 4 s after
/// that: ... results.csv holds 24 [of 93]". The second process is refused, naming the
/// first's pid and host, and the first completes to the uninterrupted results.
#[test]
fn concurrent_resume_is_refused_naming_the_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write(tmp.path(), "slow.toml", SLOW);
    let out = tmp.path().join("out");
    let mut first = spawn(&["run", s(&cfg), "--out", s(&out)]);
    wait_for_progress(&mut first, &out.join("progress.txt"), 2);
    let o = neqkin(&["run", s(&cfg), "--out", s(&out), "--resume"], &[]);
    let msg = err(&o);
    assert_eq!(o.status.code(), Some(2), "{msg}");
    assert!(msg.contains(&format!("pid {}", first.id())), "names the holder's pid: {msg}");
    assert!(msg.contains(&neqkin::run::folder::hostname()), "names the host: {msg}");
    assert!(msg.contains("in use"), "{msg}");
    let o = first.wait_with_output().unwrap();
    code(&o, 0);
    let full = full_run(tmp.path(), &cfg, "full");
    same_results(&out, &full);
}

/// Issue: "Two plain runs whose start-up overlaps both pass the 'folder is empty' check and
/// write every row twice." Exactly one of two runs started together writes the folder.
/// `--backend auto` looks for GPU adapters between the first check of the folder and its
/// opening: the start-up window of the issue.
#[test]
fn overlapping_plain_runs_write_each_row_once() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write(tmp.path(), "small.toml", SMALL);
    let full = tmp.path().join("full");
    code(&neqkin(&["run", s(&cfg), "--out", s(&full), "--backend", "auto"], &[]), 0);
    for round in 0..4 {
        let out = tmp.path().join(format!("out{round}"));
        if round % 2 == 1 {
            std::fs::create_dir(&out).unwrap(); // an existing empty folder, too
        }
        let a = spawn(&["run", s(&cfg), "--out", s(&out), "--backend", "auto"]);
        let b = spawn(&["run", s(&cfg), "--out", s(&out), "--backend", "auto"]);
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        let codes = [a.status.code(), b.status.code()];
        assert!(
            codes.contains(&Some(0)) && codes.contains(&Some(2)),
            "one run wins, the other is refused: {codes:?}\n{}\n{}",
            err(&a),
            err(&b)
        );
        let loser = if a.status.code() == Some(2) { &a } else { &b };
        let m = err(loser);
        assert!(m.contains("in use") || m.contains("not empty"), "{m}");
        same_results(&out, &full);
    }
}

/// A `--force` run started into the folder of a running one would delete the files the
/// first is writing: it is refused, naming the holder, and the first run completes.
#[test]
fn force_into_a_running_folder_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write(tmp.path(), "slow.toml", SLOW);
    let out = tmp.path().join("out");
    let mut first = spawn(&["run", s(&cfg), "--out", s(&out)]);
    wait_for_progress(&mut first, &out.join("progress.txt"), 1);
    let o = neqkin(&["run", s(&cfg), "--out", s(&out), "--force"], &[]);
    code(&o, 2);
    assert!(err(&o).contains(&format!("pid {}", first.id())), "{}", err(&o));
    code(&first.wait_with_output().unwrap(), 0);
    let full = full_run(tmp.path(), &cfg, "full");
    same_results(&out, &full);
}

/// A lock left by a process that died does not block: the kernel released it.
#[test]
fn stale_lock_of_a_dead_process_does_not_block() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write(tmp.path(), "small.toml", SMALL);
    let full = full_run(tmp.path(), &cfg, "full");
    let out = tmp.path().join("out");
    let o = neqkin(&["run", s(&cfg), "--out", s(&out)], &[("NEQKIN_TEST_ABORT_AFTER_BATCHES", "1")]);
    assert!(!o.status.success());
    let lock = read(&out.join(".neqkin.lock"));
    assert!(lock.contains("\"pid\""), "the lock file records its holder: {lock}");
    code(&neqkin(&["run", s(&cfg), "--out", s(&out), "--resume"], &[]), 0);
    same_results(&out, &full);
}

/// The number of fault events of a run (`NEQKIN_TEST_FAULT_TRACE`).
fn count_events(args: &[&str]) -> usize {
    let o = neqkin(args, &[("NEQKIN_TEST_FAULT_TRACE", "1")]);
    code(&o, 0);
    err(&o).lines().filter(|l| l.starts_with("neqkin: fault event")).count()
}

/// Issue: "a kill at any instant leaves a resumable folder" and "a kill in the first
/// milliseconds leaves a folder --resume refuses (no meta.json yet)". The run is stopped
/// at its k-th file-system event (create, write, torn half-way, rename, removal), for
/// every k, then resumed; the result equals the uninterrupted run's. Every fifth
/// interrupted folder is resumed by a resume that is itself stopped first.
#[test]
fn kill_at_every_write_then_resume_equals_the_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write(tmp.path(), "small.toml", SMALL);
    let full = full_run(tmp.path(), &cfg, "full");
    let probe = tmp.path().join("probe");
    let n = count_events(&["run", s(&cfg), "--out", s(&probe)]);
    assert!(n >= 30, "a 3-batch run with arrays has dozens of write events, got {n}");
    for k in 1..=n {
        let out = tmp.path().join(format!("k{k}"));
        let o = neqkin(&["run", s(&cfg), "--out", s(&out)], &[("NEQKIN_TEST_FAULT_AT", &k.to_string())]);
        assert_eq!(o.status.code(), Some(86), "fault {k} of {n} stops the run: {}", err(&o));
        if k % 5 == 0 {
            let o = neqkin(&["run", s(&cfg), "--out", s(&out), "--resume"], &[("NEQKIN_TEST_FAULT_AT", "9")]);
            assert!(matches!(o.status.code(), Some(86) | Some(0)), "k = {k}, second fault: {}", err(&o));
        }
        let o = neqkin(&["run", s(&cfg), "--out", s(&out), "--resume"], &[]);
        assert_eq!(o.status.code(), Some(0), "resume after fault {k} of {n}: {}", err(&o));
        same_results(&out, &full);
        let _ = std::fs::remove_dir_all(&out);
    }
}

/// The same for `--force` over a finished folder: a kill part-way through the deletion or
/// the new run leaves a folder that `--resume` completes.
#[test]
fn kill_during_force_then_resume_equals_the_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write(tmp.path(), "small.toml", SMALL);
    let full = full_run(tmp.path(), &cfg, "full");
    let probe = full_run(tmp.path(), &cfg, "probe");
    let n = count_events(&["run", s(&cfg), "--out", s(&probe), "--force"]);
    assert!(n >= 30, "deletions and a 3-batch run are dozens of events, got {n}");
    for k in (1..=n).step_by(3) {
        let out = full_run(tmp.path(), &cfg, &format!("f{k}"));
        let o = neqkin(&["run", s(&cfg), "--out", s(&out), "--force"], &[("NEQKIN_TEST_FAULT_AT", &k.to_string())]);
        assert_eq!(o.status.code(), Some(86), "fault {k} of {n}: {}", err(&o));
        let o = neqkin(&["run", s(&cfg), "--out", s(&out), "--resume"], &[]);
        assert_eq!(o.status.code(), Some(0), "resume after fault {k}: {}", err(&o));
        same_results(&out, &full);
    }
}

/// Issue: "A torn last line of progress.txt becomes a phantom point." The torn line `5`
/// (of `5 2 y,grid_x`, or of `51`) must not count as point 5 in any later session.
#[test]
fn torn_progress_line_is_not_a_phantom_point() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write(tmp.path(), "small.toml", SMALL);
    let full = full_run(tmp.path(), &cfg, "full");
    let out = tmp.path().join("out");
    let abort_after_one = [("NEQKIN_TEST_ABORT_AFTER_BATCHES", "1")];
    let o = neqkin(&["run", s(&cfg), "--out", s(&out)], &abort_after_one);
    assert!(!o.status.success());
    assert_eq!(progress_points(&out), BTreeSet::from([0, 1]));
    let mut p = read(&out.join("progress.txt"));
    p.push('5');
    std::fs::write(out.join("progress.txt"), p).unwrap();
    // A resume that is itself killed after one batch (points 2, 3), then one to the end.
    let o = neqkin(&["run", s(&cfg), "--out", s(&out), "--resume"], &abort_after_one);
    assert!(!o.status.success());
    assert_eq!(progress_points(&out), BTreeSet::from([0, 1, 2, 3]), "no phantom point 5");
    code(&neqkin(&["run", s(&cfg), "--out", s(&out), "--resume"], &[]), 0);
    same_results(&out, &full);
}

/// Issue: "--resume trusts progress.txt even when results.csv lost the rows" and "a
/// 0-byte grid_x.npy survives a resume". Finished points whose rows are missing or
/// doubled, or whose arrays are not whole in `results.zarr` (shard cut short or gone, a
/// point missing from a shard's index), are redone; a damaged shared grid is rewritten.
#[test]
fn resume_redoes_finished_points_whose_rows_or_arrays_are_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write(tmp.path(), "small.toml", SMALL);
    let full = full_run(tmp.path(), &cfg, "full");
    let csv_full = read(&full.join("results.csv"));
    type Damage = (&'static str, fn(&Path));
    let damage: [Damage; 7] = [
        ("rows of point 3 lost", |out| {
            let csv: String = read(&out.join("results.csv"))
                .lines()
                .filter(|l| !l.starts_with("3,"))
                .map(|l| format!("{l}\n"))
                .collect();
            std::fs::write(out.join("results.csv"), csv).unwrap();
        }),
        ("results.csv lost all but its header", |out| {
            let csv = read(&out.join("results.csv"));
            std::fs::write(out.join("results.csv"), format!("{}\n", csv.lines().next().unwrap())).unwrap();
        }),
        ("rows of point 2 written twice", |out| {
            let mut csv = read(&out.join("results.csv"));
            let dup: String = csv.lines().filter(|l| l.starts_with("2,")).map(|l| format!("{l}\n")).collect();
            csv.push_str(&dup);
            std::fs::write(out.join("results.csv"), csv).unwrap();
        }),
        ("the shard holding y of every point cut short by 8 bytes", |out| {
            let p = out.join("results.zarr/y/c.0.0.0");
            let b = std::fs::read(&p).unwrap();
            std::fs::write(&p, &b[..b.len() - 8]).unwrap();
        }),
        ("the shard holding y deleted", |out| {
            std::fs::remove_file(out.join("results.zarr/y/c.0.0.0")).unwrap();
        }),
        ("point 4 taken out of the shard's index", |out| {
            // 6 inner chunks, index (offset, nbytes) per chunk at the end, 2^64-1 = absent.
            let p = out.join("results.zarr/y/c.0.0.0");
            let mut b = std::fs::read(&p).unwrap();
            let at = b.len() - 16 * 6 + 16 * 4;
            b[at..at + 16].fill(0xff);
            std::fs::write(&p, &b).unwrap();
        }),
        ("the shared grid_x truncated to 0 bytes", |out| {
            std::fs::write(out.join("results.zarr/grid_x/c.0"), b"").unwrap();
        }),
    ];
    for (i, (what, f)) in damage.iter().enumerate() {
        let out = tmp.path().join(format!("d{i}"));
        code(&neqkin(&["run", s(&cfg), "--out", s(&out)], &[]), 0);
        f(&out);
        let o = neqkin(&["run", s(&cfg), "--out", s(&out), "--resume"], &[]);
        code(&o, 0);
        assert!(err(&o).contains("redone"), "{what}: the resume says it redoes points: {}", err(&o));
        if what.starts_with("point 4") || what.contains("grid_x") {
            assert!(err(&o).contains("1 point recorded finished is incomplete"), "{what}: one point only: {}", err(&o));
        }
        assert_eq!(read(&out.join("results.csv")), csv_full, "{what}");
        same_results(&out, &full);
    }
}

/// Issue: "The fingerprint holds the dos_table path, not its content, so a resume mixes
/// two band structures. A refused resume does not say which field differs."
#[test]
fn resume_checks_the_content_of_referenced_files_and_names_the_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let table = tmp.path().join("dos.csv");
    std::fs::write(&table, "# eps, D, v2\n-1, 1, 1\n0, 1, 1\n1, 1, 1\n").unwrap();
    let cfg_text = format!(
        r#"
model = "photoexcited"
[solver]
method = "dopri5"
t_end = 0.05
rtol = 1e-5
atol = 1e-8
[params]
grid_points = 24
dos = "table"
dos_table = {table:?}
[[sweep]]
name = "temperature"
values = [0.02, 0.03, 0.04, 0.05]
[output]
arrays = false
batch_size = 2
"#
    );
    let cfg = write(tmp.path(), "pe.toml", &cfg_text);
    let out = tmp.path().join("out");
    let o = neqkin(&["run", s(&cfg), "--out", s(&out)], &[("NEQKIN_TEST_ABORT_AFTER_BATCHES", "1")]);
    assert!(!o.status.success(), "{}", err(&o));
    // The table changes under the same path: the resume is refused, naming the field.
    std::fs::write(&table, "# eps, D, v2\n-1, 2, 1\n0, 1, 1\n1, 2, 1\n").unwrap();
    let o = neqkin(&["run", s(&cfg), "--out", s(&out), "--resume"], &[]);
    code(&o, 2);
    assert!(err(&o).contains("params.dos_table") && err(&o).contains("content differs"), "{}", err(&o));
    // Another sweep and tolerance: each differing field is named.
    let other =
        write(tmp.path(), "other.toml", &cfg_text.replace("rtol = 1e-5", "rtol = 1e-6").replace("0.05]", "0.06]"));
    std::fs::write(&table, "# eps, D, v2\n-1, 1, 1\n0, 1, 1\n1, 1, 1\n").unwrap();
    let o = neqkin(&["run", s(&other), "--out", s(&out), "--resume"], &[]);
    code(&o, 2);
    let m = err(&o);
    assert!(m.contains("solver.rtol") && m.contains("sweep[0].values"), "{m}");
    assert!(!m.contains("dos_table"), "the table is as recorded again: {m}");
    // The original table and config resume.
    code(&neqkin(&["run", s(&cfg), "--out", s(&out), "--resume"], &[]), 0);
    let meta: serde_json::Value = serde_json::from_str(&read(&out.join("meta.json"))).unwrap();
    assert_eq!(meta["inputs"]["params.dos_table"]["sha256"].as_str().map(str::len), Some(64), "{meta:#}");
}

/// Issue: "--force deletes results.csv, meta.json, progress.txt and arrays/ in any
/// non-empty folder, neqkin's or not."
#[test]
fn force_is_refused_on_a_folder_neqkin_did_not_make() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write(tmp.path(), "small.toml", SMALL);
    let foreign = tmp.path().join("mine");
    std::fs::create_dir_all(foreign.join("arrays")).unwrap();
    for f in ["results.csv", "progress.txt", "notes.txt", "arrays/data.npy"] {
        std::fs::write(foreign.join(f), "precious").unwrap();
    }
    for extra in [&["--force"][..], &["--resume"][..], &[][..]] {
        let mut args = vec!["run", s(&cfg), "--out", s(&foreign)];
        args.extend_from_slice(extra);
        let o = neqkin(&args, &[]);
        code(&o, 2);
        assert!(err(&o).contains("not a neqkin output folder"), "{extra:?}: {}", err(&o));
    }
    let o = neqkin(&["merge", s(&foreign), s(&full_run(tmp.path(), &cfg, "full")), "--force"], &[]);
    assert_ne!(o.status.code(), Some(0), "{}", err(&o));
    for f in ["results.csv", "progress.txt", "notes.txt", "arrays/data.npy"] {
        assert_eq!(read(&foreign.join(f)), "precious", "{f} untouched");
    }
    assert!(!foreign.join(".neqkin.lock").exists() && !foreign.join(".neqkin").exists(), "nothing written there");
    // On a folder neqkin made, --force starts over.
    let out = full_run(tmp.path(), &cfg, "ours");
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    code(&neqkin(&["run", s(&cfg), "--out", s(&out), "--force"], &[]), 0);
    assert_eq!(read(&out.join("notes.txt")), "mine", "--force deletes only what neqkin writes");
}

/// Issue: "merge OUT … --force with OUT among the inputs loses 141 of its 279 arrays and
/// exits 0; merge with a missing or incomplete shard exits 0 with a warning."
#[test]
fn merge_refuses_its_output_as_input_and_missing_or_incomplete_shards() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write(tmp.path(), "small.toml", SMALL);
    let full = full_run(tmp.path(), &cfg, "full");
    let shards: Vec<PathBuf> = (0..3).map(|i| tmp.path().join(format!("s{i}"))).collect();
    for (i, d) in shards.iter().enumerate() {
        code(&neqkin(&["run", s(&cfg), "--out", s(d), "--shard", &format!("{i}/3")], &[]), 0);
    }
    let before = (read(&shards[0].join("results.csv")), arrays(&shards[0]));

    // OUT among the inputs (also spelt differently): refused, nothing changed.
    for spelt in [shards[0].clone(), tmp.path().join("s1/../s0"), tmp.path().join("./s0/")] {
        let o = neqkin(&["merge", s(&spelt), s(&shards[0]), s(&shards[1]), s(&shards[2]), "--force"], &[]);
        code(&o, 2);
        assert!(err(&o).contains("one of the inputs"), "{}", err(&o));
    }
    assert_eq!((read(&shards[0].join("results.csv")), arrays(&shards[0])), before);

    // A missing shard folder, a shard not given, an incomplete shard: refused (exit 2,
    // no output folder); with --allow-partial merged with a warning.
    let m = tmp.path().join("m_missing");
    let gone = tmp.path().join("s9");
    let o = neqkin(&["merge", s(&m), s(&shards[0]), s(&shards[1]), s(&gone)], &[]);
    code(&o, 2);
    assert!(err(&o).contains("does not exist") && err(&o).contains("--allow-partial"), "{}", err(&o));
    assert!(!m.exists(), "nothing written for a refused merge");
    let o = neqkin(&["merge", s(&m), s(&shards[0]), s(&shards[1])], &[]);
    code(&o, 2);
    assert!(err(&o).contains("2/3") && err(&o).contains("not given"), "{}", err(&o));
    assert!(!m.exists());
    let o = neqkin(&["merge", s(&m), s(&shards[0]), s(&shards[1]), s(&gone), "--allow-partial"], &[]);
    code(&o, 0);
    assert!(err(&o).contains("warning"), "{}", err(&o));
    let meta: serde_json::Value = serde_json::from_str(&read(&m.join("meta.json"))).unwrap();
    assert_eq!(meta["complete"], false);
    // A partial merge is a folder `run --resume` completes.
    code(&neqkin(&["run", s(&cfg), "--out", s(&m), "--resume"], &[]), 0);
    same_results(&m, &full);

    // Shard 2/3 cut after its first point (batches of one: output options are not part
    // of the fingerprint, so it is still a shard of the same run).
    let one = write(tmp.path(), "one.toml", &SMALL.replace("batch_size = 2", "batch_size = 1"));
    let cut = tmp.path().join("cut");
    let o = neqkin(&["run", s(&one), "--out", s(&cut), "--shard", "2/3"], &[("NEQKIN_TEST_ABORT_AFTER_BATCHES", "1")]);
    assert!(!o.status.success(), "the shard is cut short: {}", err(&o));
    let m2 = tmp.path().join("m_incomplete");
    let o = neqkin(&["merge", s(&m2), s(&shards[0]), s(&shards[1]), s(&cut)], &[]);
    code(&o, 2);
    assert!(err(&o).contains("incomplete: 1 of its 2 points"), "{}", err(&o));
    assert!(!m2.exists());
    let o = neqkin(&["merge", s(&m2), s(&shards[0]), s(&shards[1]), s(&cut), "--allow-partial"], &[]);
    code(&o, 0);
    assert_eq!(progress_points(&m2).len(), 5);
    // Complete shards merge to the full run; a rerun into the result needs --force.
    let m3 = tmp.path().join("m_ok");
    code(&neqkin(&["merge", s(&m3), s(&shards[2]), s(&shards[0]), s(&shards[1])], &[]), 0);
    same_results(&m3, &full);
    let o = neqkin(&["merge", s(&m3), s(&shards[2]), s(&shards[0]), s(&shards[1])], &[]);
    code(&o, 2);
    code(&neqkin(&["merge", s(&m3), s(&shards[2]), s(&shards[0]), s(&shards[1]), "--force"], &[]), 0);
    same_results(&m3, &full);
    // A shard given twice is refused.
    let o = neqkin(&["merge", s(&tmp.path().join("m4")), s(&shards[0]), s(&shards[0])], &[]);
    code(&o, 2);
    assert!(err(&o).contains("twice"), "{}", err(&o));
}

/// SIGTERM (a scheduler's or `kill`'s stop) ends the run after the batch in flight is
/// written: exit 130, and `--resume` completes the folder to the uninterrupted results.
#[test]
fn sigterm_stops_after_the_batch_in_flight_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write(tmp.path(), "slow.toml", SLOW);
    let out = tmp.path().join("out");
    let mut child = spawn(&["run", s(&cfg), "--out", s(&out)]);
    wait_for_progress(&mut child, &out.join("progress.txt"), 2);
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let o = child.wait_with_output().unwrap();
    let done = progress_points(&out).len();
    assert!(done < 40, "the run finished before the signal arrived");
    code(&o, 130);
    // Every point recorded is whole (rows written before the line in progress.txt).
    let csv = read(&out.join("results.csv"));
    assert_eq!(csv.lines().count(), 1 + done, "one row per finished point, nothing of the next");
    code(&neqkin(&["run", s(&cfg), "--out", s(&out), "--resume"], &[]), 0);
    let full = full_run(tmp.path(), &cfg, "full");
    same_results(&out, &full);
}
