#!/usr/bin/env python3
"""neqkin against a SciPy and a JAX/diffrax implementation of the same discretisation.

    python3 -m venv /work/venv-peers && /work/venv-peers/bin/pip install numpy scipy jax diffrax
    cargo build --release
    /work/venv-peers/bin/python benches/peers/compare.py            # full run (~10 min on 2 cores)
    /work/venv-peers/bin/python benches/peers/compare.py --quick    # N = 512 only, 16 points

Sweep (Fig 2a type, issue 12): semicircular DoS, half filling, T = 0.003, fixed zeta,
Gamma_in = 0, E = 0, t = 10, rtol 1e-6, atol 1e-9, omega_p = linspace(0.1, 0.9, 64).
For every (N, zeta) and every repetition the three codes run interleaved, on the same machine:

* neqkin: the release binary, `neqkin run CONFIG --backend cpu` (`solver.method` from
  --method, default `auto`: DOPRI5, or `bdf` where the run is stability-limited; all
  cores), timed as a whole process (start-up, tables, integration, results.csv); RHS
  evaluations per point from meta.json's `rhs_evaluations_per_point` (every evaluation of the
  method that ran, Jacobian columns included; the observables' RHS call is not counted).
* SciPy: `solve_ivp` RK45, one point at a time; table construction not timed.
* JAX/diffrax: `jit(vmap(diffeqsolve))`, Tsit5, PIDController, float64, all points in one
  call; compilation and a short warm-up call are not timed.

Per-point time = wall / points, and CPU time (user + system, all threads) / points: on a
shared, loaded machine the CPU time is the robust measure (it does not count waiting for a
core), the wall time is what a user sees. Each code's sigma/sigma0 is compared with neqkin's at every
point it ran; a difference above --tol (1e-6) fails the run (exit 1). Medians over --reps.
"""

import argparse
import csv
import json
import resource
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
REPO = os.path.dirname(os.path.dirname(HERE))

import numpy as np  # noqa: E402

CONFIG = """model = "photoexcited"
[solver]
method = "{method}"
t_end = {t_end}
output_times = [{t_end}]
rtol = 1e-6
atol = 1e-9
[params]
dos = "semicircular"
transport = "constant_v2_tau"
grid_points = {n}
temperature = 0.003
filling = 0.5
zeta = {zeta}
inelastic_rate = 0.0
[[sweep]]
name = "phonon_frequency"
values = [{omegas}]
[output]
arrays = false
"""


def run_neqkin(binary, n, zeta, omegas, t_end, workdir, method="auto"):
    cfg = os.path.join(workdir, f"peers_n{n}_z{zeta:g}.toml")
    with open(cfg, "w") as fh:
        fh.write(CONFIG.format(method=method, t_end=t_end, n=n, zeta=zeta, omegas=", ".join(repr(float(w)) for w in omegas)))
    out = os.path.join(workdir, f"out_n{n}_z{zeta:g}")
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([binary, "run", cfg, "--out", out, "--backend", "cpu", "--force"],
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    ru2 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru2.ru_utime + ru2.ru_stime) - (ru.ru_utime + ru.ru_stime)
    if proc.returncode != 0:
        raise RuntimeError(f"neqkin failed ({proc.returncode}): {proc.stderr[-2000:]}")
    rows = list(csv.DictReader(open(os.path.join(out, "results.csv"))))
    rows.sort(key=lambda r: int(r["point"]))
    sig = [float(r["sigma_over_sigma0"]) for r in rows]
    # meta.json counts every evaluation of whichever method ran (Jacobian columns
    # included); older binaries without it: DOPRI5's 1 + 6 x attempts (FSAL).
    meta = json.load(open(os.path.join(out, "meta.json")))
    per_point = meta.get("rhs_evaluations_per_point")
    if per_point is not None:
        evals = [float(per_point)] * len(rows)
    else:
        evals = [1 + 6 * (int(r["steps_accepted"]) + int(r["steps_rejected"])) for r in rows]
    if len(sig) != len(omegas):
        raise RuntimeError(f"neqkin wrote {len(sig)} rows for {len(omegas)} points")
    return wall / len(omegas), sig, evals, cpu / len(omegas)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="512,2048,8192")
    ap.add_argument("--zetas", default="1,5,20")
    ap.add_argument("--points", type=int, default=64, help="omega_p values in [0.1, 0.9]")
    ap.add_argument("--scipy-points-8192", type=int, default=8,
                    help="SciPy runs every (points/this)-th omega_p at N >= 8192 (time budget)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--t-end", type=float, default=10.0)
    ap.add_argument("--tol", type=float, default=1e-6, help="max |sigma/sigma0 - neqkin's| allowed")
    ap.add_argument("--neqkin", default=None, help="binary (default: $CARGO_TARGET_DIR or target/release/neqkin)")
    ap.add_argument("--peers", default="scipy,jax")
    ap.add_argument("--method", default="auto",
                    help="neqkin's solver.method (auto: DOPRI5, or bdf in the stability-limited regime)")
    ap.add_argument("--quick", action="store_true", help="N = 512, 16 points, 1 rep")
    a = ap.parse_args()
    if a.quick:
        a.sizes, a.points, a.reps = "512", 16, 1
    sizes = [int(x) for x in a.sizes.split(",")]
    zetas = [float(x) for x in a.zetas.split(",")]
    peers = [p for p in a.peers.split(",") if p]
    binary = a.neqkin or os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target")),
                                      "release", "neqkin")
    if not os.path.exists(binary):
        sys.exit(f"no neqkin binary at {binary}: run `cargo build --release` (or pass --neqkin)")
    mods = {}
    if "scipy" in peers:
        import scipy
        import scipy_peer
        mods["scipy"] = scipy_peer
        print(f"# scipy {scipy.__version__}, numpy {np.__version__}")
    if "jax" in peers:
        try:
            import diffrax
            import jax
            import jax_peer
            mods["jax"] = jax_peer
            print(f"# jax {jax.__version__}, diffrax {diffrax.__version__}, devices {jax.devices()}")
        except ImportError as e:
            print(f"# JAX peer skipped: {e}")
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"# machine: {cpu}, {os.cpu_count()} cores; neqkin binary {binary}")
    print(f"# sweep: {a.points} omega_p in [0.1, 0.9], t = {a.t_end}, neqkin {a.method} / SciPy RK45 / JAX Tsit5, rtol 1e-6 atol 1e-9, "
          f"median of {a.reps} interleaved reps")
    omegas = np.linspace(0.1, 0.9, a.points)
    names = ["neqkin"] + list(mods)
    table = []
    worst = 0.0
    with tempfile.TemporaryDirectory() as work:
        for n in sizes:
            for zeta in zetas:
                sub = omegas
                if n >= 8192 and a.scipy_points_8192 < a.points:
                    sub = omegas[:: max(1, a.points // a.scipy_points_8192)]
                times = {k: [] for k in names}
                cpus = {k: [] for k in names}
                result = {}
                for _ in range(a.reps):
                    result["neqkin"] = run_neqkin(binary, n, zeta, omegas, a.t_end, work, a.method)
                    times["neqkin"].append(result["neqkin"][0])
                    cpus["neqkin"].append(result["neqkin"][3])
                    for name, mod in mods.items():
                        pts = sub if name == "scipy" else omegas
                        r = mod.run(n, zeta, pts, a.t_end)
                        result[name] = r
                        times[name].append(r[0])
                        cpus[name].append(r[3])
                ref = dict(zip(omegas, result["neqkin"][1]))
                row = {"n": n, "zeta": zeta}
                for name in names:
                    pts = sub if name == "scipy" else omegas
                    sig, evals = result[name][1], result[name][2]
                    dev = max(abs(s - ref[w]) for w, s in zip(pts, sig))
                    worst = max(worst, dev if name != "neqkin" else 0.0)
                    row[name] = (statistics.median(times[name]), statistics.mean(evals), dev, len(pts),
                                 statistics.median(cpus[name]))
                table.append(row)
                line = " | ".join(f"{k} {row[k][0] * 1e3:.2f} ms wall, {row[k][4] * 1e3:.2f} ms CPU "
                                  f"({row[k][1]:.0f} evals, {row[k][3]} pts)"
                                  for k in names)
                print(f"# N = {n}, zeta = {zeta:g}: {line}", flush=True)
    for title, col in (("wall time per point (ms)", 0), ("CPU time per point, all threads (ms)", 4)):
        print()
        print(f"### {title}")
        head = "| N | ζ | " + " | ".join(names) + " | " + " | ".join(f"{k} / neqkin" for k in names[1:]) + \
            " | " + " | ".join(f"RHS evals/point {k}" for k in names) + " | " + \
            " | ".join(f"max Δσ/σ0 {k}" for k in names[1:]) + " |"
        print(head)
        print("|" + "---|" * (head.count("|") - 1))
        for n in sizes:
            rows = [r for r in table if r["n"] == n]
            for r in rows:
                print(f"| {n} | {r['zeta']:g} | " + " | ".join(f"{r[k][col] * 1e3:.2f}" for k in names) + " | " +
                      " | ".join(f"{r[k][col] / r['neqkin'][col]:.2f}×" for k in names[1:]) + " | " +
                      " | ".join(f"{r[k][1]:.0f}" for k in names) + " | " +
                      " | ".join(f"{r[k][2]:.1e}" for k in names[1:]) + " |")
            mean = {k: statistics.mean(r[k][col] for r in rows) for k in names}
            print(f"| {n} | mean | " + " | ".join(f"{mean[k] * 1e3:.2f}" for k in names) + " | " +
                  " | ".join(f"{mean[k] / mean['neqkin']:.2f}×" for k in names[1:]) + " | " +
                  " | ".join("" for _ in names) + " | " + " | ".join("" for _ in names[1:]) + " |")
    print()
    if worst > a.tol:
        print(f"FAIL: a peer's sigma/sigma0 differs from neqkin's by {worst:.2e} > {a.tol:g}")
        return 1
    print(f"agreement: every peer's sigma/sigma0 within {worst:.2e} of neqkin's (tolerance {a.tol:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
