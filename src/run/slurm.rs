//! `neqkin slurm`: a sweep as a Slurm job array (one shard per task) plus a merge job.
//!
//! [`prepare`] checks the config, copies it into a job folder (`<out>.slurm/` by default)
//! with its SHA-256, and writes:
//!
//! - `array.sbatch`: `#SBATCH --array=0-(N-1) --requeue`; task `I` runs
//!   `neqkin run <copy> --shard I/N --out <job>/shards/I --resume`. `--resume` starts a
//!   fresh run in an absent or empty folder and continues its own shard otherwise, so a
//!   requeued task (node failure, preemption, `scontrol requeue`) or a resubmitted array
//!   redoes only the points its shard has not finished. Before running, the task checks
//!   the copy against the recorded hash: an edit after submission is refused (exit 2), it
//!   never changes a running sweep. Exit 1 of `run` (points flagged `failed`: the shard
//!   finished) is mapped to 0 so the merge still runs; `merge` then exits 1.
//! - `merge.sbatch`: `neqkin merge <out> <job>/shards/0 … --force`, submitted with
//!   `--dependency=afterok:<array id>` and `--kill-on-invalid-dep=yes`.
//! - `submit.sh`: the two `sbatch` calls, for submitting (or resubmitting) by hand.
//! - `job.json`: what was generated (config hash, shards, paths, neqkin build) and, after
//!   [`submit`], the job ids of every submission.
//!
//! Every path in the scripts is absolute (the neqkin binary included) and the jobs run in
//! the folder `neqkin slurm` was called from (`--chdir`), where relative paths inside the
//! config (`dos_table`, α²F files) resolve as they do for `neqkin run`.
//!
//! Running `neqkin slurm` again on the same job folder rewrites the scripts (a longer
//! `--time`, another partition) and, with `--submit`, resubmits: finished shards are
//! skipped, unfinished ones resume. A job folder made for another config or shard count
//! is refused.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::run::output::{self, GIT_COMMIT, VERSION};
use crate::{NeqkinError, Result};

use super::BackendChoice;

/// Name of the record file in the job folder.
pub const JOB_JSON: &str = "job.json";
/// Array script.
pub const ARRAY_SCRIPT: &str = "array.sbatch";
/// Merge script.
pub const MERGE_SCRIPT: &str = "merge.sbatch";
/// Both `sbatch` calls.
pub const SUBMIT_SCRIPT: &str = "submit.sh";

/// What to generate.
#[derive(Clone, Debug, Default)]
pub struct SlurmOptions {
    /// Number of shards = array tasks (≥ 1, ≤ points of the sweep).
    pub shards: usize,
    /// Folder of the merged dataset (default `results/<config stem>`).
    pub out: Option<PathBuf>,
    /// Job folder: config copy, scripts, logs, shard folders (default `<out>.slurm`).
    pub job_dir: Option<PathBuf>,
    /// `--partition`.
    pub partition: Option<String>,
    /// `--time` of each array task (and of the merge job).
    pub time: Option<String>,
    /// `--cpus-per-task` of each array task (also the CPU backend's thread count).
    pub cpus: Option<u32>,
    /// `--gpus` of each array task (`N` or `type:N`).
    pub gpus: Option<String>,
    /// `--mem` of each array task.
    pub mem: Option<String>,
    /// `--account`.
    pub account: Option<String>,
    /// At most this many array tasks at once (`--array=0-(N-1)%K`).
    pub max_parallel: Option<usize>,
    /// More `#SBATCH` lines for the array script, verbatim (`--qos=long`, `--gres=gpu:1`).
    pub sbatch_args: Vec<String>,
    /// Backend of `neqkin run` in each task; `None` = `gpu` with `gpus`, else `cpu`.
    pub backend: Option<BackendChoice>,
    /// The neqkin binary the jobs run (default: this process's executable).
    pub neqkin: Option<PathBuf>,
}

/// What [`prepare`] wrote.
#[derive(Clone, Debug)]
pub struct SlurmJob {
    /// Job folder (absolute).
    pub job_dir: PathBuf,
    /// Merged dataset folder (absolute).
    pub out: PathBuf,
    /// The config copy the tasks run.
    pub config: PathBuf,
    /// Its SHA-256 (hex).
    pub config_sha256: String,
    /// Array tasks.
    pub shards: usize,
    /// Points of the sweep.
    pub points: usize,
    /// `array.sbatch`.
    pub array_script: PathBuf,
    /// `merge.sbatch`.
    pub merge_script: PathBuf,
    /// `submit.sh`.
    pub submit_script: PathBuf,
    /// Shard folder of each task, in task order.
    pub shard_dirs: Vec<PathBuf>,
    /// Whether the job folder existed (same config and shard count) and was reused.
    pub reused: bool,
}

impl SlurmJob {
    /// The two commands a user types to submit the job by hand.
    pub fn sbatch_commands(&self) -> [String; 2] {
        [
            format!("sbatch --parsable {}", sh_quote(&self.array_script.display().to_string())),
            format!(
                "sbatch --parsable --dependency=afterok:<array job id> {}",
                sh_quote(&self.merge_script.display().to_string())
            ),
        ]
    }
}

/// Job ids of one submission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submission {
    /// The array job (tasks are `<id>_<I>`).
    pub array: String,
    /// The merge job.
    pub merge: String,
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// `'text'` for a POSIX shell (embedded `'` as `'\''`).
pub fn sh_quote(text: &str) -> String {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,@".contains(&b)) {
        return text.to_string();
    }
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Paths that go into `#SBATCH` lines (which sbatch does not parse like a shell) must be
/// plain: no whitespace, quotes, backslashes, or `%` (a filename pattern there).
fn sbatch_safe(what: &str, p: &Path) -> Result<String> {
    let s = p.to_str().ok_or_else(|| NeqkinError::invalid(what, format!("{} is not UTF-8", p.display())))?;
    if let Some(c) = s.chars().find(|c| c.is_whitespace() || matches!(c, '\'' | '"' | '\\' | '%' | '$' | '`')) {
        return Err(NeqkinError::invalid(
            what,
            format!("{s}: the character {c:?} cannot go into an #SBATCH line; choose a path without it"),
        ));
    }
    Ok(s.to_string())
}

/// A value for an `#SBATCH --name=value` line: one word, printable.
fn sbatch_value(field: &str, v: &str) -> Result<String> {
    if v.is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '\'' | '"' | '\\')) {
        return Err(NeqkinError::invalid(field, format!("`{v}`: expected one word without spaces or quotes")));
    }
    Ok(v.to_string())
}

fn absolute(p: &Path) -> Result<PathBuf> {
    let cwd = std::env::current_dir().map_err(|e| NeqkinError::io(".", e))?;
    let abs = if p.is_absolute() { p.to_path_buf() } else { cwd.join(p) };
    // Lexical clean-up of `.` and `..` (the folders may not exist yet).
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

fn write_file(path: &Path, text: &str, executable: bool) -> Result<()> {
    output::write_atomic(path, text.as_bytes())?;
    #[cfg(unix)]
    if executable {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(|e| NeqkinError::io(path, e))?;
    }
    #[cfg(not(unix))]
    let _ = executable;
    Ok(())
}

/// Checks `config`, creates or reuses the job folder and writes the scripts; submits
/// nothing. Errors: a bad config or option (input errors, naming the field), a job folder
/// of another config or shard count, or a non-empty `out` that is not this job's merge.
pub fn prepare(config: &Path, opts: &SlurmOptions) -> Result<SlurmJob> {
    let (plan, _model) = crate::config::load_plan(config)?;
    let points = plan.n_points();
    let n = opts.shards;
    if n == 0 {
        return Err(NeqkinError::invalid("--shards", "must be ≥ 1"));
    }
    if n > points {
        return Err(NeqkinError::invalid(
            "--shards",
            format!("{n} shards for a sweep of {points} points would leave {} tasks with nothing to do", n - points),
        ));
    }
    if opts.max_parallel == Some(0) {
        return Err(NeqkinError::invalid("--max-parallel", "must be ≥ 1"));
    }
    if opts.cpus == Some(0) {
        return Err(NeqkinError::invalid("--cpus", "must be ≥ 1"));
    }
    let bytes = std::fs::read(config).map_err(|e| NeqkinError::io(config, e))?;
    let sha = sha256_hex(&bytes);
    let out = absolute(&opts.out.clone().unwrap_or_else(|| super::default_out(config, Default::default())))?;
    let job_dir = match &opts.job_dir {
        Some(j) => absolute(j)?,
        None => {
            let mut name = out.file_name().map(|s| s.to_os_string()).unwrap_or_else(|| "run".into());
            name.push(".slurm");
            out.with_file_name(name)
        }
    };
    if job_dir == out || job_dir.starts_with(&out) || out.starts_with(&job_dir) {
        return Err(NeqkinError::invalid(
            "--job-dir",
            "the job folder and the output folder must not contain each other",
        ));
    }
    let workdir = absolute(Path::new("."))?;
    let neqkin = match &opts.neqkin {
        Some(p) => absolute(p)?,
        None => std::env::current_exe().map_err(|e| NeqkinError::io("neqkin executable", e))?,
    };
    let job_s = sbatch_safe(if opts.job_dir.is_some() { "--job-dir" } else { "--out" }, &job_dir)?;
    sbatch_safe("working folder", &workdir)?;
    let config_name =
        config.file_name().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "config.toml".into());
    let copy = job_dir.join(&config_name);

    // #SBATCH lines shared by both scripts.
    let mut common = Vec::new();
    if let Some(p) = &opts.partition {
        common.push(format!("--partition={}", sbatch_value("--partition", p)?));
    }
    if let Some(a) = &opts.account {
        common.push(format!("--account={}", sbatch_value("--account", a)?));
    }
    if let Some(t) = &opts.time {
        common.push(format!("--time={}", sbatch_value("--time", t)?));
    }
    common.push(format!("--chdir={}", workdir.display()));
    let mut array_lines = vec![
        format!("--job-name=neqkin-{}", sbatch_value("config name", &stem(config))?),
        format!("--array=0-{}{}", n - 1, opts.max_parallel.map(|k| format!("%{k}")).unwrap_or_default()),
        "--requeue".into(),
        "--open-mode=append".into(),
        format!("--output={job_s}/logs/shard_%a.log"),
    ];
    array_lines.extend(common.iter().cloned());
    array_lines.push(format!("--cpus-per-task={}", opts.cpus.unwrap_or(1)));
    if let Some(g) = &opts.gpus {
        array_lines.push(format!("--gpus={}", sbatch_value("--gpus", g)?));
    }
    if let Some(m) = &opts.mem {
        array_lines.push(format!("--mem={}", sbatch_value("--mem", m)?));
    }
    for a in &opts.sbatch_args {
        if !a.starts_with('-') || a.contains('\n') {
            return Err(NeqkinError::invalid(
                "--sbatch-arg",
                format!("`{a}`: expected one sbatch option such as --qos=long"),
            ));
        }
        array_lines.push(a.clone());
    }
    let backend =
        match opts.backend.unwrap_or(if opts.gpus.is_some() { BackendChoice::Gpu } else { BackendChoice::Cpu }) {
            BackendChoice::Auto => "auto",
            BackendChoice::Gpu => "gpu",
            BackendChoice::Cpu => "cpu",
        };

    // An existing job folder is reused only for the same config and shard count.
    let record_path = job_dir.join(JOB_JSON);
    let mut submissions = Value::Array(Vec::new());
    let reused = record_path.exists();
    if reused {
        let text = std::fs::read_to_string(&record_path).map_err(|e| NeqkinError::io(&record_path, e))?;
        let old: Value = serde_json::from_str(&text)
            .map_err(|e| NeqkinError::output(&record_path, format!("is not a neqkin job record: {e}")))?;
        let differs = |field: &str, was: String, now: String| {
            NeqkinError::output(
                &job_dir,
                format!(
                    "holds a Slurm job with {field} {was}, not {now}; submit into a new folder (--out or --job-dir) \
                     or delete this one"
                ),
            )
        };
        if old["config_sha256"].as_str() != Some(sha.as_str()) {
            return Err(differs(
                "config sha256",
                format!("{} (copied from {})", old["config_sha256"].as_str().unwrap_or("?"), old["config_source"]),
                format!("{sha} ({})", config.display()),
            ));
        }
        if old["shards"].as_u64() != Some(n as u64) {
            return Err(differs("--shards", old["shards"].to_string(), n.to_string()));
        }
        if old["out"].as_str() != Some(&*out.display().to_string()) {
            return Err(differs("output folder", old["out"].to_string(), out.display().to_string()));
        }
        submissions = old["submissions"].clone();
        if !submissions.is_array() {
            submissions = Value::Array(Vec::new());
        }
    } else {
        output::check_folder(&job_dir, output::OpenMode::New).map_err(|_| {
            NeqkinError::output(&job_dir, format!("is not empty and has no {JOB_JSON}; not a neqkin job folder"))
        })?;
        output::check_folder(&out, output::OpenMode::New).map_err(|_| {
            NeqkinError::output(&out, "is not empty; the merge job would overwrite it. Choose another --out")
        })?;
    }
    for d in [job_dir.join("logs"), job_dir.join("shards")] {
        std::fs::create_dir_all(&d).map_err(|e| NeqkinError::io(&d, e))?;
    }
    if !reused || std::fs::read(&copy).ok().as_deref() != Some(&bytes[..]) {
        output::write_atomic(&copy, &bytes)?;
    }
    let shard_dirs: Vec<PathBuf> = (0..n).map(|i| job_dir.join("shards").join(i.to_string())).collect();

    let header = |what: &str| {
        format!(
            "#!/bin/bash\n# {what}\n# Written by `neqkin slurm` (neqkin {VERSION}, commit {GIT_COMMIT}) on {}.\n\
             # Config: {} (sha256 {sha}), copied from {}.\n",
            output::utc_now(),
            copy.display(),
            config.display()
        )
    };
    let q = |p: &Path| sh_quote(&p.display().to_string());
    let sbatch_block = |lines: &[String]| lines.iter().map(|l| format!("#SBATCH {l}\n")).collect::<String>();
    let check_copy = format!(
        "# The config is the copy made at submission; an edit since then is refused.\n\
         if ! echo {sha_line} | sha256sum --check --status; then\n  \
         echo \"neqkin slurm: $CONFIG changed since submission (sha256 differs from {sha}); refusing to run it\" >&2\n  \
         exit 2\nfi\n",
        sha_line = sh_quote(&format!("{sha}  {}", copy.display())),
    );

    let array = format!(
        "{header}# Task I of the array runs shard I/{n} of the sweep into {shards}/I; a requeued or\n\
         # resubmitted task resumes its own shard (run --resume starts afresh in an empty folder).\n\
         {sbatch}\
         set -uo pipefail\n\
         NEQKIN={neqkin}\n\
         CONFIG={copy_q}\n\
         I=\"${{SLURM_ARRAY_TASK_ID:?run this script with sbatch (it is a job array)}}\"\n\
         echo \"neqkin slurm: shard $I/{n}, attempt $(( ${{SLURM_RESTART_COUNT:-0}} + 1 )), job ${{SLURM_ARRAY_JOB_ID:-?}}_$I on $(hostname) at $(date -u +%FT%TZ)\"\n\
         {check_copy}\
         export RAYON_NUM_THREADS=\"${{SLURM_CPUS_PER_TASK:-1}}\"\n\
         \"$NEQKIN\" run \"$CONFIG\" --shard \"$I/{n}\" --out {shards_q}/\"$I\" --resume --backend {backend} &\n\
         pid=$!\n\
         # Slurm signals every process of the job (time limit, scancel, requeue): neqkin then\n\
         # stops after the batch in flight is written. The shell waits for that.\n\
         trap 'echo \"neqkin slurm: signalled; shard $I stops after the batch in flight\" >&2' TERM INT\n\
         rc=0\n\
         wait \"$pid\" || rc=$?\n\
         while kill -0 \"$pid\" 2>/dev/null; do rc=0; wait \"$pid\" || rc=$?; done\n\
         echo \"neqkin slurm: shard $I/{n}: neqkin run exited with $rc at $(date -u +%FT%TZ)\"\n\
         # 1 = the shard finished with points flagged failed (they are in results.csv): the\n\
         # merge still runs and reports them.\n\
         if [ \"$rc\" = 1 ]; then exit 0; fi\n\
         exit \"$rc\"\n",
        header = header(&format!("Slurm job array: {n} shards of {points} points.")),
        sbatch = sbatch_block(&array_lines),
        neqkin = q(&neqkin),
        copy_q = q(&copy),
        shards = job_dir.join("shards").display(),
        shards_q = q(&job_dir.join("shards")),
    );

    let mut merge_lines = vec![
        format!("--job-name=neqkin-{}-merge", stem(config)),
        "--open-mode=append".into(),
        format!("--output={job_s}/logs/merge.log"),
        "--kill-on-invalid-dep=yes".into(),
    ];
    merge_lines.extend(common.iter().cloned());
    merge_lines.push("--cpus-per-task=1".into());
    let shard_args: String = shard_dirs.iter().map(|d| format!(" \\\n  {}", q(d))).collect();
    let merge = format!(
        "{header}# Runs after every array task succeeded (--dependency=afterok); --force replaces the\n\
         # merge of an earlier submission of this job.\n\
         {sbatch}\
         set -euo pipefail\n\
         echo \"neqkin slurm: merge, job ${{SLURM_JOB_ID:-?}} on $(hostname) at $(date -u +%FT%TZ)\"\n\
         exec {neqkin} merge {out}{shard_args} \\\n  --force\n",
        header = header(&format!("Slurm merge job: joins the {n} shards into {}.", out.display())),
        sbatch = sbatch_block(&merge_lines),
        neqkin = q(&neqkin),
        out = q(&out),
    );

    let submit = format!(
        "#!/bin/sh\n# Submits (or resubmits) the job: the array, then the merge after it succeeds.\n\
         # Written by `neqkin slurm`; `neqkin slurm ... --submit` does the same and records the ids.\n\
         set -eu\n\
         array=$(sbatch --parsable {array})\n\
         array=${{array%%;*}}\n\
         merge=$(sbatch --parsable --dependency=afterok:\"$array\" {merge})\n\
         echo \"array job $array ({n} tasks), merge job ${{merge%%;*}} (after $array succeeds)\"\n",
        array = q(&job_dir.join(ARRAY_SCRIPT)),
        merge = q(&job_dir.join(MERGE_SCRIPT)),
    );

    let job = SlurmJob {
        array_script: job_dir.join(ARRAY_SCRIPT),
        merge_script: job_dir.join(MERGE_SCRIPT),
        submit_script: job_dir.join(SUBMIT_SCRIPT),
        job_dir: job_dir.clone(),
        out: out.clone(),
        config: copy.clone(),
        config_sha256: sha.clone(),
        shards: n,
        points,
        shard_dirs,
        reused,
    };
    write_file(&job.array_script, &array, true)?;
    write_file(&job.merge_script, &merge, true)?;
    write_file(&job.submit_script, &submit, true)?;
    let record = json!({
        "neqkin": neqkin.display().to_string(),
        "neqkin_version": VERSION,
        "git_commit": GIT_COMMIT,
        "written": output::utc_now(),
        "config": copy.display().to_string(),
        "config_source": absolute(config)?.display().to_string(),
        "config_sha256": sha,
        "shards": n,
        "points_total": points,
        "out": out.display().to_string(),
        "workdir": workdir.display().to_string(),
        "backend": backend,
        "submissions": submissions,
    });
    write_file(&record_path, &serde_json::to_string_pretty(&record).unwrap_or_default(), false)?;
    Ok(job)
}

fn stem(config: &Path) -> String {
    config.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "run".into())
}

/// Runs `sbatch --parsable` with `args`; the job id it prints.
fn sbatch(args: &[String]) -> Result<String> {
    let o = Command::new("sbatch").args(args).output().map_err(|e| {
        NeqkinError::io(
            "sbatch",
            std::io::Error::new(e.kind(), format!("{e}; is this a Slurm login node (sbatch on the PATH)?")),
        )
    })?;
    let stdout = String::from_utf8_lossy(&o.stdout).trim().to_string();
    if !o.status.success() {
        return Err(NeqkinError::output(
            "sbatch",
            format!("`sbatch {}` failed ({}): {}", args.join(" "), o.status, String::from_utf8_lossy(&o.stderr).trim()),
        ));
    }
    // `--parsable` prints `id` or `id;cluster`.
    let id = stdout.split(';').next().unwrap_or_default().trim().to_string();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NeqkinError::output("sbatch", format!("unexpected output of `sbatch --parsable`: `{stdout}`")));
    }
    Ok(id)
}

/// Jobs of earlier submissions of this folder that Slurm still has queued or running.
fn still_queued(job: &SlurmJob) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(job.job_dir.join(JOB_JSON)) else { return Vec::new() };
    let Ok(record) = serde_json::from_str::<Value>(&text) else { return Vec::new() };
    let ids: Vec<String> = record["submissions"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| [s["array"].as_str(), s["merge"].as_str()])
        .flatten()
        .map(str::to_string)
        .collect();
    if ids.is_empty() {
        return Vec::new();
    }
    let Ok(o) = Command::new("squeue").args(["-h", "-o", "%i %T", "-j", &ids.join(",")]).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&o.stdout).lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect()
}

/// Submits a prepared job: the array, then the merge with `afterok` on it; records both
/// ids in `job.json`. Refused while a job of an earlier submission of the same folder is
/// still queued or running (two tasks would share a shard folder).
pub fn submit(job: &SlurmJob) -> Result<Submission> {
    let queued = still_queued(job);
    if !queued.is_empty() {
        return Err(NeqkinError::output(
            &job.job_dir,
            format!(
                "an earlier submission is still in the queue ({}); wait for it or scancel it before resubmitting",
                queued.join(", ")
            ),
        ));
    }
    let array = sbatch(&["--parsable".into(), job.array_script.display().to_string()])?;
    let merge =
        sbatch(&["--parsable".into(), format!("--dependency=afterok:{array}"), job.merge_script.display().to_string()])
            .map_err(|e| {
                NeqkinError::output(
                    &job.job_dir,
                    format!(
                        "the array was submitted as job {array} but the merge job was not ({e}); submit it with \
                 `sbatch --dependency=afterok:{array} {}`",
                        job.merge_script.display()
                    ),
                )
            })?;
    let path = job.job_dir.join(JOB_JSON);
    let text = std::fs::read_to_string(&path).map_err(|e| NeqkinError::io(&path, e))?;
    let mut record: Value = serde_json::from_str(&text).unwrap_or_else(|_| json!({}));
    if !record["submissions"].is_array() {
        record["submissions"] = json!([]);
    }
    record["submissions"].as_array_mut().expect("an array").push(json!({
        "array": array, "merge": merge, "submitted": output::utc_now(),
    }));
    write_file(&path, &serde_json::to_string_pretty(&record).unwrap_or_default(), false)?;
    Ok(Submission { array, merge })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_known_vector() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(sh_quote("/a/b-c.toml"), "/a/b-c.toml");
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(sh_quote(""), "''");
    }
}
