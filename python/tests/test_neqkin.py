"""The Python package against the CLI, on the relaxation fixture (exact solution
y = target + (y0 - target)·exp(-rate·t)).

The CLI binary is $NEQKIN_BIN, or built with cargo from the repository when unset.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import neqkin

REPO = Path(__file__).resolve().parents[2]

SWEEP = """
model = "relaxation"
[solver]
method = "dopri5"
t_end = 1.0
n_outputs = 2
rtol = 1e-9
atol = 1e-12
[params]
grid_points = 8
initial = 2.0
[[sweep]]
name = "rate"
values = [0.5, 1.0, 2.0, 4.0]
[[sweep]]
name = "target"
values = [0.0, 1.0, -1.0]
[output]
batch_size = 3
"""

SWEEP_DICT = {
    "model": "relaxation",
    "solver": {"method": "dopri5", "t_end": 1.0, "n_outputs": 2, "rtol": 1e-9, "atol": 1e-12},
    "params": {"grid_points": 8, "initial": 2.0},
    "sweep": [{"name": "rate", "values": [0.5, 1.0, 2.0, 4.0]}, {"name": "target", "values": [0.0, 1.0, -1.0]}],
    "output": {"batch_size": 3},
}


@pytest.fixture(scope="session")
def cli() -> str:
    exe = os.environ.get("NEQKIN_BIN")
    if exe:
        assert os.path.isfile(exe), f"NEQKIN_BIN={exe} does not exist"
        return exe
    subprocess.run(["cargo", "build", "--quiet", "--bin", "neqkin"], cwd=REPO, check=True)
    meta = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=REPO, check=True, capture_output=True
    )
    return os.path.join(json.loads(meta.stdout)["target_directory"], "debug", "neqkin")


@pytest.fixture()
def config(tmp_path: Path) -> Path:
    p = tmp_path / "sweep.toml"
    p.write_text(SWEEP)
    return p


def run_cli(cli: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([cli, *args], capture_output=True, text=True)


# meta.json fields that record when a run happened and how long it took; every other byte
# of an output folder is a function of the config, the build and the backend.
TIMING = ("started", "finished", "sessions[].started", "sessions[].finished", "batches[].wall_s")


def meta_without_timing(path: Path) -> dict:
    meta = json.loads(path.read_text())
    for key in ("started", "finished"):
        assert key in meta, f"{path}: no `{key}` (update TIMING)"
        del meta[key]
    for list_key, key in (("sessions", "started"), ("sessions", "finished"), ("batches", "wall_s")):
        for entry in meta[list_key]:
            assert key in entry, f"{path}: {list_key}[] has no `{key}` (update TIMING)"
            del entry[key]
    return meta


# The folder's marker and lock file: present in both, with times and a pid of their own.
OWN = (".neqkin", ".neqkin.lock")


def assert_same_folder(a: Path, b: Path) -> None:
    """Every file of two output folders is byte-identical, except meta.json, which must be
    equal once its TIMING fields are removed (they hold wall-clock times), and the marker
    and lock file (OWN), which must exist in both."""
    for d in (a, b):
        for own in OWN:
            assert (d / own).is_file(), f"{d}: no {own}"
    files_a = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file() and p.name not in OWN)
    files_b = sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file() and p.name not in OWN)
    assert files_a == files_b
    assert "results.csv" in files_a and "meta.json" in files_a and "progress.txt" in files_a
    for f in files_a:
        if f == "meta.json":
            assert meta_without_timing(a / f) == meta_without_timing(b / f)
        else:
            assert (a / f).read_bytes() == (b / f).read_bytes(), f


def test_sweep_equals_cli_and_the_exact_solution(cli, config, tmp_path):
    ds = neqkin.run(config, out=tmp_path / "py", backend="cpu", progress=False)
    r = run_cli(cli, "run", str(config), "--backend", "cpu", "--out", str(tmp_path / "cli"))
    assert r.returncode == 0, r.stderr
    # The folder is the CLI's, file for file and byte for byte (timings aside).
    assert_same_folder(tmp_path / "py", tmp_path / "cli")
    assert not (tmp_path / "py" / "arrays").exists()  # one dataset, no per-point files
    xr.testing.assert_identical(ds, neqkin.load(tmp_path / "cli"))

    assert ds.sizes["point"] == 12 and ds.sizes["time"] == 2
    np.testing.assert_array_equal(ds.time.values, [0.5, 1.0])
    # Sweep values are coordinates along `point`, last axis fastest.
    np.testing.assert_array_equal(ds.rate.values, np.repeat([0.5, 1.0, 2.0, 4.0], 3))
    np.testing.assert_array_equal(ds.target.values, np.tile([0.0, 1.0, -1.0], 4))
    assert (ds.status.values == "reached").all()
    # The state array against the exact solution, to the integrator's tolerance.
    assert ds.y.dims == ("point", "time", "grid") and ds.y.shape == (12, 2, 8)
    assert ds.grid_x.dims == ("grid",)
    exact = ds.target + (2.0 - ds.target) * np.exp(-ds.rate * ds.time)
    assert float(abs(ds.y - exact).max()) < 1e-7
    assert float(ds.error_vs_exact.max()) < 1e-7
    np.testing.assert_allclose(ds.grid_x.values, (np.arange(8) + 0.5) / 8, rtol=0, atol=1e-15)
    # On the sweep's grid: one dimension per axis, values as coordinates (sorted).
    g = neqkin.grid(ds)
    assert g.y.dims == ("rate", "target", "time", "grid")
    np.testing.assert_array_equal(g.rate.values, [0.5, 1.0, 2.0, 4.0])
    np.testing.assert_array_equal(g.target.values, [-1.0, 0.0, 1.0])
    one = ds.y.isel(point=int(np.flatnonzero((ds.rate == 2.0) & (ds.target == -1.0))[0]))
    np.testing.assert_array_equal(g.y.sel(rate=2.0, target=-1.0).values, one.values)


def test_dataset_opens_in_one_line_with_plain_xarray(cli, config, tmp_path):
    """results.zarr is a Zarr v3 store that xarray opens on its own (no neqkin, no
    warning): dims, coordinates and values agree with results.csv and the exact solution."""
    pd = pytest.importorskip("pandas")
    pytest.importorskip("zarr")
    out = tmp_path / "o"
    r = run_cli(cli, "run", str(config), "--backend", "cpu", "--out", str(out))
    assert r.returncode == 0, r.stderr
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = xr.open_zarr(out / "results.zarr")
    assert dict(ds.sizes) == {"point": 12, "time": 2, "grid": 8}
    assert ds.y.dims == ("point", "time", "grid")
    assert set(ds.coords) == {"point", "time", "rate", "target", "grid_x"}
    assert ds.grid_x.dims == ("grid",)  # the same for every point: written once
    # Files: coordinates, one shard of y (12 points x 2 times x 8 reals), the shared grid.
    files = sorted(p.relative_to(out / "results.zarr").as_posix() for p in (out / "results.zarr").rglob("*") if p.is_file())
    assert [f for f in files if "/c." in f] == ["grid_x/c.0", "point/c.0", "rate/c.0", "target/c.0", "time/c.0", "y/c.0.0.0"]
    df = pd.read_csv(out / "results.csv")
    last = df[df.output == 1].set_index("point")
    np.testing.assert_array_equal(ds.point.values, last.index.values)
    np.testing.assert_array_equal(ds.rate.values, last.rate.values)
    np.testing.assert_array_equal(ds.target.values, last.target.values)
    np.testing.assert_array_equal(ds.time.values, df.groupby("output").t.first().values)
    # The CSV's mean of y at the last time is the mean over the dataset's grid.
    np.testing.assert_allclose(ds.y.isel(time=-1).mean("grid").values, last["mean"].values, rtol=1e-13)
    exact = ds.target + (2.0 - ds.target) * np.exp(-ds.rate * ds.time)
    assert float(abs(ds.y - exact).max()) < 1e-7


def test_dataset_of_a_partial_run_has_nan_for_points_not_run(cli, config, tmp_path):
    """A shard's store has the whole `point` dimension; points it did not run read as NaN,
    and neqkin.load keeps only the finished ones."""
    pytest.importorskip("zarr")
    out = tmp_path / "s"
    r = run_cli(cli, "run", str(config), "--backend", "cpu", "--out", str(out), "--shard", "1/3")
    assert r.returncode == 0, r.stderr
    ds = xr.open_zarr(out / "results.zarr")
    ran = ds.point.values % 3 == 1
    assert ds.sizes["point"] == 12
    assert np.isfinite(ds.y.values[ran]).all() and np.isnan(ds.y.values[~ran]).all()
    loaded = neqkin.load(out)
    np.testing.assert_array_equal(loaded.point.values, [1, 4, 7, 10])
    np.testing.assert_array_equal(loaded.y.values, ds.y.values[ran])


def test_dict_config_equals_the_file(config, tmp_path):
    neqkin.run(config, out=tmp_path / "file", backend="cpu", progress=False)
    d = dict(SWEEP_DICT, params={"grid_points": 8, "initial": np.float64(2.0)})  # numpy values are fine
    ds = neqkin.run(d, out=tmp_path / "dict", backend="cpu", progress=False)
    assert_same_folder(tmp_path / "file", tmp_path / "dict")
    assert ds.attrs["model"] == "relaxation"


def test_bad_config_raises_config_error_naming_the_field(config, tmp_path):
    bad = json.loads(json.dumps(SWEEP_DICT))
    bad["solver"]["rtol"] = -1.0
    with pytest.raises(neqkin.ConfigError, match=r"solver\.rtol") as e:
        neqkin.run(bad, out=tmp_path / "a", backend="cpu")
    assert e.value.field == "solver.rtol"
    bad = json.loads(json.dumps(SWEEP_DICT))
    bad["params"]["temperature"] = 1.0
    with pytest.raises(neqkin.ConfigError, match=r"params\.temperature") as e:
        neqkin.run(bad, backend="cpu")
    assert e.value.field == "params.temperature"
    bad = json.loads(json.dumps(SWEEP_DICT))
    bad["solver"]["t_end"] = float("nan")
    with pytest.raises(neqkin.ConfigError, match="NaN"):
        neqkin.run(bad, backend="cpu")
    with pytest.raises(neqkin.ConfigError) as e:
        neqkin.run(config, backend="tpu")
    assert e.value.field == "backend"
    with pytest.raises(FileNotFoundError):
        neqkin.run(tmp_path / "missing.toml")
    # A non-empty output folder without resume/force is refused by the run layer.
    neqkin.run(config, out=tmp_path / "o", backend="cpu", progress=False)
    with pytest.raises(neqkin.RunError, match="output folder"):
        neqkin.run(config, out=tmp_path / "o", backend="cpu", progress=False)
    neqkin.run(config, out=tmp_path / "o", backend="cpu", progress=False, force=True)


def test_load_round_trips(config, tmp_path):
    ds = neqkin.run(config, out=tmp_path / "o", backend="cpu", progress=False)
    xr.testing.assert_identical(ds, neqkin.load(tmp_path / "o"))
    # Without `out` the run goes to a temporary folder; the data are the same.
    tmp = neqkin.run(config, backend="cpu", progress=False)
    xr.testing.assert_identical(ds.drop_attrs(), tmp.drop_attrs())


SLOW = """
model = "relaxation"
[solver]
method = "rk4"
dt = 0.0005
t_end = 1.0
[params]
grid_points = 2000
[[sweep]]
name = "rate"
linspace = [0.1, 2.0, 30]
[output]
arrays = false
batch_size = 1
"""

# A user's script: nothing catches KeyboardInterrupt.
SCRIPT = """
import sys, neqkin
neqkin.run(sys.argv[1], out=sys.argv[2], backend="cpu", progress=True)
print("finished without an interrupt")
"""


def test_ctrl_c_stops_after_the_batch_in_flight_and_resumes(cli, tmp_path):
    cfg = tmp_path / "slow.toml"
    cfg.write_text(SLOW)
    out = tmp_path / "o"
    progress = out / "progress.txt"
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(cfg), str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (progress.exists() and progress.read_text().count("\n") >= 2):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no batch written within 120 s"
            time.sleep(0.005)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    # Python ends a script whose KeyboardInterrupt nobody caught by SIGINT (-2).
    assert proc.returncode == -signal.SIGINT, (proc.returncode, stderr)
    assert "finished without an interrupt" not in stdout
    assert "KeyboardInterrupt" in stderr and "stopping after the batch in flight" in stderr
    # progress=True reports on stderr even when it is not a terminal (lines, then).
    assert re.search(r"\b\d+/30 points", stderr), stderr
    done = [int(line.split()[0]) for line in progress.read_text().splitlines()]  # `point rows arrays`
    assert 2 <= len(done) < 30 and done == list(range(len(done)))
    meta = json.loads((out / "meta.json").read_text())
    assert meta["complete"] is False and len(meta["batches"]) == len(done)
    # Every recorded point has its rows, no other point has any: the folder is resumable.
    partial = neqkin.load(out)
    np.testing.assert_array_equal(partial.point.values, done)
    assert (partial.status.values == "reached").all()
    ds = neqkin.run(cfg, out=out, backend="cpu", progress=False, resume=True)
    assert ds.attrs["complete"] == 1 and ds.sizes["point"] == 30
    r = run_cli(cli, "run", str(cfg), "--backend", "cpu", "--out", str(tmp_path / "cli"))
    assert r.returncode == 0, r.stderr
    assert (out / "results.csv").read_bytes() == (tmp_path / "cli" / "results.csv").read_bytes()
    assert (out / "progress.txt").read_bytes() == (tmp_path / "cli" / "progress.txt").read_bytes()


def test_sigterm_stops_after_the_batch_in_flight_and_resumes(tmp_path):
    """SIGTERM (``kill``, Slurm's stop before SIGKILL) ends a run from Python like Ctrl-C:
    the batch in flight is written, the folder is resumable, the script exits 143."""
    cfg = tmp_path / "slow.toml"
    cfg.write_text(SLOW)
    out = tmp_path / "o"
    progress = out / "progress.txt"
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(cfg), str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (progress.exists() and progress.read_text().count("\n") >= 2):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no batch written within 120 s"
            time.sleep(0.005)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, (proc.returncode, stderr)
    assert "finished without an interrupt" not in stdout
    assert "stopping after the batch in flight" in stderr, stderr
    done = [int(line.split()[0]) for line in progress.read_text().splitlines()]
    assert 2 <= len(done) < 30 and done == list(range(len(done)))
    meta = json.loads((out / "meta.json").read_text())
    assert meta["complete"] is False and len(meta["batches"]) == len(done)
    ds = neqkin.run(cfg, out=out, backend="cpu", progress=False, resume=True)
    assert ds.attrs["complete"] == 1 and ds.sizes["point"] == 30
    # The handler was only there while the run went.
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_dry_run_and_limits_as_the_cli(cli, config, tmp_path):
    out = tmp_path / "o"
    # A fixed output cap: the default, the free space there, may change between the two calls.
    est = neqkin.run(config, out=out, backend="cpu", max_output="1G", dry_run=True)
    assert not out.exists(), "the dry run created the output folder"
    assert (est["points_total"], est["batches"]) == (12, 4) and est["backend"].startswith("cpu"), est
    assert est["groups"][0]["key"] == "grid_points=8" and est["groups"][0]["batch_size"] == 3
    assert est["output_bytes"] == est["csv_bytes"] + est["array_bytes"] > 0
    r = run_cli(cli, "run", "--dry-run", "--backend", "cpu", "--max-output", "1G", "--out", str(out), str(config))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(est["report"]), (r.stdout, est["report"])
    # The caps: refused before anything is written, naming the option.
    with pytest.raises(neqkin.ConfigError, match="--max-points"):
        neqkin.run(config, out=out, backend="cpu", max_points=5)
    with pytest.raises(neqkin.ConfigError, match="--max-memory"):
        neqkin.run(SWEEP_DICT, out=out, backend="cpu", max_memory="1K")
    with pytest.raises(neqkin.ConfigError, match="--max-output"):
        neqkin.run(config, out=out, backend="cpu", max_output=100)
    assert not out.exists()
    with pytest.raises(neqkin.ConfigError) as e:
        neqkin.run(config, out=out, backend="cpu", max_memory="lots")
    assert e.value.field == "max_memory"
    ds = neqkin.run(config, out=out, backend="cpu", progress=False, max_memory="1G", max_points=12)
    assert ds.sizes["point"] == 12


def test_python_cargo_lock_pins_the_root_crates_versions():
    """python/Cargo.lock is its own workspace's lock file: every crate it shares with the
    root Cargo.lock must have the same version(s), so the extension runs the tested code."""
    tomllib = pytest.importorskip("tomllib")

    def versions(path: Path) -> dict:
        out: dict = {}
        for p in tomllib.loads(path.read_text())["package"]:
            out.setdefault(p["name"], set()).add(p["version"])
        return out

    root, py = versions(REPO / "Cargo.lock"), versions(REPO / "python" / "Cargo.lock")
    assert "pyo3" in py and "neqkin" in py
    differ = {n: (root[n], py[n]) for n in root.keys() & py.keys() if root[n] != py[n]}
    assert not differ, f"crate versions differ (root, python): {differ}"


def test_models_devices_and_init(tmp_path):
    models = neqkin.models()
    assert set(models) == {"photoexcited", "cavity", "eliashberg", "interband", "relaxation"}
    pf = {p["name"]: p for p in models["photoexcited"]["parameters"]}
    assert pf["phonon_frequency"]["default"] == 0.5 and pf["phonon_frequency"]["unit"] == "W"
    assert pf["phonon_frequency"]["meaning"]
    # Every parameter of every model: a unit and one line of meaning.
    for name, m in models.items():
        for p in m["parameters"]:
            assert p["unit"] and p["meaning"] and "\n" not in p["meaning"], (name, p)
    assert {p["name"]: p for p in models["cavity"]["parameters"]}["t_cry"]["status"] == "required"
    devs = neqkin.devices()
    assert devs[0]["kind"] == "cpu" and devs[0]["f64"] is True
    # The starter config runs as printed.
    cfg = tmp_path / "relaxation.toml"
    cfg.write_text(neqkin.init("relaxation"))
    ds = neqkin.run(cfg, backend="cpu", progress=False)
    assert (ds.status.values == "reached").all()
    assert float(ds.error_vs_exact.max()) < 1e-6
    assert "phonon_frequency" in neqkin.params("photoexcited")
    with pytest.raises(neqkin.ConfigError) as e:
        neqkin.init("nope")
    assert e.value.field == "model"
