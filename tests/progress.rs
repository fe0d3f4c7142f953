//! Progress reporting of a run: the run layer calls a `SweepProgress` after every written
//! batch (points done / to run, failures); `neqkin run` draws a bar on a terminal, prints
//! plain lines with `--progress` when stderr is not a terminal, and is silent otherwise.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use neqkin::run::schedule::{BatchReport, ProgressHandle, SweepProgress, SweepSummary};
use neqkin::run::{self, BackendChoice, RunOptions};

/// RK4 with h = 0.1: stable for rate 0.5..2, blowing up (|1 − h·rate + …| ≫ 1) for
/// rate = 1000, so exactly the points with rate 1000 fail.
const CONFIG: &str = r#"model = "relaxation"
[solver]
method = "rk4"
dt = 0.1
t_end = 5.0
[params]
grid_points = 4
initial = 1.0
target = 0.0
[[sweep]]
name = "rate"
values = [0.5, 1.0, 1000.0, 2.0, 1000.0]
[[sweep]]
name = "diffusion"
values = [0.0, 0.1]
[output]
batch_size = 3
"#;

#[derive(Default)]
struct Recorder {
    started: Mutex<Vec<(usize, usize)>>,
    batches: Mutex<Vec<BatchReport>>,
    finished: Mutex<usize>,
}

impl SweepProgress for Recorder {
    fn start(&self, to_run: usize, skipped: usize) {
        self.started.lock().unwrap().push((to_run, skipped));
    }
    fn batch_done(&self, report: &BatchReport) {
        self.batches.lock().unwrap().push(report.clone());
    }
    fn finish(&self, _summary: &SweepSummary) {
        *self.finished.lock().unwrap() += 1;
    }
}

fn write(dir: &Path) -> std::path::PathBuf {
    let cfg = dir.join("sweep.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    cfg
}

#[test]
fn the_run_layer_reports_every_batch_with_failures() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path());
    let rec = Arc::new(Recorder::default());
    let opts = RunOptions {
        backend: BackendChoice::Cpu,
        out: Some(dir.path().join("out")),
        reporter: Some(ProgressHandle(rec.clone())),
        ..Default::default()
    };
    let s = run::run_config(&cfg, &opts).unwrap();
    assert_eq!(s.failed_points, 4, "rate 1000 × two diffusion values × two axis entries");
    assert_eq!(*rec.started.lock().unwrap(), vec![(10, 0)]);
    assert_eq!(*rec.finished.lock().unwrap(), 1);
    let b = rec.batches.lock().unwrap();
    // 10 points in batches of 3: 3, 3, 3, 1.
    assert_eq!(b.iter().map(|r| r.batch_points).collect::<Vec<_>>(), vec![3, 3, 3, 1]);
    assert_eq!(b.iter().map(|r| r.points_done).collect::<Vec<_>>(), vec![3, 6, 9, 10]);
    assert!(b.iter().all(|r| r.points_to_run == 10 && r.batch_error.is_none()));
    // Running failure count = sum of the batches' failures, ending at the folder's count.
    let mut sum = 0;
    for r in b.iter() {
        sum += r.batch_failed;
        assert_eq!(r.points_failed, sum);
    }
    assert_eq!(sum, 4);
}

#[test]
fn plain_lines_with_progress_flag_and_silence_without() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path());
    let run = |out: &str, flag: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_neqkin"));
        c.args(["run", cfg.to_str().unwrap(), "--backend", "cpu", "--out"]).arg(dir.path().join(out));
        if flag {
            c.arg("--progress");
        }
        let o = c.output().unwrap();
        assert_eq!(o.status.code(), Some(1), "failed points give exit code 1");
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    let with = run("a", true);
    eprintln!("{with}");
    assert!(with.contains("neqkin: 10 points to run"), "{with}");
    // The first batch and the last are always reported.
    assert!(with.contains("neqkin: 3/10 points (30.0 %), 0 failed"), "{with}");
    assert!(with.contains("neqkin: 10/10 points (100.0 %), 4 failed") && with.contains("ETA 0s"), "{with}");
    let without = run("b", false);
    assert!(!without.contains("points (") && !without.contains("points to run"), "{without}");
}

/// On a terminal (a pseudo-terminal opened by util-linux `script`) `neqkin run` draws the
/// indicatif bar on stderr: points done / total and the failure count, without `--progress`;
/// the results are those of the run without a terminal.
#[test]
fn a_bar_on_a_terminal_and_the_same_results() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no `script` (util-linux) to open a pseudo-terminal");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path());
    let bin = env!("CARGO_BIN_EXE_neqkin");
    let tty_out = dir.path().join("tty");
    let cmd = format!("'{bin}' run '{}' --backend cpu --out '{}'", cfg.display(), tty_out.display());
    let o = Command::new("script").args(["-qec", &cmd, "/dev/null"]).env("TERM", "xterm").output().unwrap();
    let screen = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(o.status.code(), Some(1), "failed points give exit code 1 on a terminal too: {screen}");
    assert!(screen.contains("10/10 points, 4 failed"), "the bar's last state: {screen:?}");
    assert!(screen.contains("ETA"), "{screen:?}");
    assert!(!screen.contains('░'), "no bar drawn before its style is set: {screen:?}");
    // The same sweep without a terminal (and without --progress): silent, same rows.
    let plain_out = dir.path().join("plain");
    let p = Command::new(bin)
        .args(["run", cfg.to_str().unwrap(), "--backend", "cpu", "--out"])
        .arg(&plain_out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&p.stderr);
    assert!(!err.contains('\u{1b}') && !err.contains("points,"), "no bar off a terminal: {err:?}");
    let rows = |d: &Path| std::fs::read_to_string(d.join("results.csv")).unwrap();
    assert_eq!(rows(&tty_out), rows(&plain_out), "the bar does not touch the results");
}
