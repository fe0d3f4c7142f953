//! Records the git commit and a dirty flag for `meta.json` (`NEQKIN_GIT_COMMIT`,
//! `NEQKIN_GIT_DIRTY`); "unknown" where git or the repository is unavailable.
//!
//! Reruns when HEAD, the index or the checked-out branch's ref change (commits, checkouts,
//! `git add`); edits to files
//! that are not yet staged do not refresh the dirty flag until the next rebuild trigger.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = match git(&["status", "--porcelain", "--untracked-files=no"]) {
        Some(s) => (!s.is_empty()).to_string(),
        None => "unknown".into(),
    };
    println!("cargo:rustc-env=NEQKIN_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=NEQKIN_GIT_DIRTY={dirty}");
    println!("cargo:rerun-if-changed=build.rs");
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        let dir = std::path::Path::new(&dir);
        for f in ["HEAD", "index"] {
            let p = dir.join(f);
            if p.exists() {
                println!("cargo:rerun-if-changed={}", p.display());
            }
        }
        // Only this checkout's branch: watching all of refs/heads rebuilt every worktree
        // whenever any branch moved.
        if let (Some(common), Some(branch)) =
            (git(&["rev-parse", "--git-common-dir"]), git(&["symbolic-ref", "-q", "HEAD"]))
        {
            let common = std::path::Path::new(&common);
            for p in [common.join(&branch), common.join("packed-refs")] {
                if p.exists() {
                    println!("cargo:rerun-if-changed={}", p.display());
                }
            }
        }
    }
}
