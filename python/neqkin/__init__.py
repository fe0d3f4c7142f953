"""neqkin from Python: run a sweep, load its output folder as an xarray Dataset.

    import neqkin
    ds = neqkin.run("configs/photoexcited/fig2a.toml", out="results/fig2a")
    ds.sigma_over_sigma0            # dims (point, time); sweep values are coordinates

The run itself is the same Rust code as `neqkin run` (the library's run layer), so the
folder written to `out` is the one the CLI writes (its results.csv is identical).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
import threading
from typing import Any, Mapping, Optional, Union

import numpy as np

# Mesa's Vulkan drivers complain on stderr at every adapter query when this is unset
# (headless jobs, notebooks); the CLI sets it the same way. neqkin never writes there.
os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())

from . import _neqkin  # noqa: E402
from ._neqkin import ConfigError, RunError  # noqa: E402

__all__ = ["run", "load", "grid", "devices", "models", "init", "params", "ConfigError", "RunError", "__version__"]
__version__ = _neqkin.__version__

PathLike = Union[str, "os.PathLike[str]"]


def _jsonable(x: Any) -> Any:
    """numpy scalars and arrays (sweep values built with numpy) as plain JSON values."""
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"{type(x).__name__} is not a config value")


@contextlib.contextmanager
def _sigterm_stops_the_run():
    """While a sweep runs, SIGTERM (``kill``, a batch scheduler's stop before its SIGKILL)
    ends it like Ctrl-C: the run layer finishes and writes the batch in flight (the folder
    stays resumable), then ``SystemExit(128 + SIGTERM)`` ends the script with the status a
    killed process would have. Python's default for SIGTERM is to die at once, mid-batch.
    Installed only in the main thread (where Python runs signal handlers) and only where
    the program has not set a SIGTERM handler of its own; restored afterwards."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) not in (
        signal.SIG_DFL,
        None,
    ):
        yield
        return

    def stop(signum, _frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _bytes(name: str, v: Union[int, str, None]) -> Optional[str]:
    """A byte cap as the run layer reads it: an int (bytes) or a string such as ``"16G"``."""
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, str, np.integer)):
        raise ConfigError(f"{name}: expected a byte count (an int, or a string such as '16G'), got {v!r}")
    return str(v)


def run(
    config: Union[PathLike, Mapping[str, Any]],
    out: Optional[PathLike] = None,
    backend: str = "auto",
    precision: str = "auto",
    progress: bool = True,
    resume: bool = False,
    force: bool = False,
    max_memory: Union[int, str, None] = None,
    max_output: Union[int, str, None] = None,
    max_points: Optional[int] = None,
    dry_run: bool = False,
):
    """Run the sweep of `config` and return its dataset (see :func:`load`).

    config: a config file (TOML, or JSON by extension) or a dict with the TOML structure
        (``{"model": ..., "solver": {...}, "params": {...}, "sweep": [...]}``).
    out: output folder (as ``neqkin run --out``); None writes to a temporary folder that
        is removed once the dataset is loaded into memory.
    backend: "auto" | "gpu" | "cpu"; precision: "auto" | "f32" | "f64".
    progress: report progress on stderr also when it is not a terminal (a line per batch);
        on a terminal the run layer draws its bar either way.
    resume / force: continue the run recorded in `out`, or delete what is there.
    max_memory / max_output / max_points: the caps of ``neqkin run --max-memory``,
        ``--max-output`` (bytes: an int, or a string such as ``"16G"``) and
        ``--max-points``; a run beyond one is refused before anything is written
        (ConfigError with the estimate in its message).
    dry_run: return what the run would do instead of running it, as ``neqkin run
        --dry-run`` prints it: a dict with ``points_total``, ``batches``, ``groups``,
        ``max_batch_bytes``, ``output_bytes``, ``csv_bytes``, ``array_bytes``, the caps,
        ``backend`` and the printed ``report``. Nothing is created.

    The GIL is released while the sweep runs. Ctrl-C stops it after the batch in flight
    is written (then ``resume=True`` continues it) and raises KeyboardInterrupt; SIGTERM
    does the same and then raises ``SystemExit(143)`` (in the main thread, unless the
    program handles SIGTERM itself).
    Raises ConfigError (its ``field`` names the config field, e.g. ``solver.rtol``; None
    for a file that does not parse, whose message gives the line) or RunError.
    """
    path = text = None
    if isinstance(config, Mapping):
        try:
            text = json.dumps(dict(config), default=_jsonable, allow_nan=False)
        except ValueError as e:
            raise ConfigError(f"config: {e} (NaN and infinity are not allowed)") from None
        except TypeError as e:
            raise ConfigError(f"config: {e}") from None
    else:
        path = os.fspath(config)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"config file not found: {path}")
    if max_points is not None and (isinstance(max_points, bool) or int(max_points) < 1):
        raise ConfigError(f"max_points: expected a positive int, got {max_points!r}")
    caps = dict(
        max_memory=_bytes("max_memory", max_memory),
        max_output=_bytes("max_output", max_output),
        max_points=None if max_points is None else int(max_points),
    )

    def sweep(folder: str, dry: bool = False) -> str:
        with _sigterm_stops_the_run():
            return _neqkin.run_sweep(
                path, text, folder, backend, precision, progress, resume, force, dry_run=dry, **caps
            )

    if dry_run:
        folder = os.fspath(out) if out is not None else os.path.join(tempfile.gettempdir(), "neqkin-dry-run")
        return json.loads(sweep(folder, dry=True))
    if out is None:
        with tempfile.TemporaryDirectory(prefix="neqkin-") as tmp:
            sweep(os.path.join(tmp, "out"))
            return load(os.path.join(tmp, "out")).load()
    sweep(os.fspath(out))
    return load(out)


def _open_store(store: str):
    """``results.zarr`` as an xarray Dataset: ``xr.open_zarr`` where zarr-python 3 is
    installed (Python >= 3.11), else this package's reader of the layout neqkin writes
    (uncompressed little-endian chunks, point-sharded arrays with the index at the end)."""
    import xarray as xr

    try:
        import zarr  # noqa: F401
    except ImportError:
        zarr = None
    if zarr is not None:
        return xr.open_zarr(store).load()
    with open(os.path.join(store, "zarr.json"), encoding="utf-8") as f:
        nodes = json.load(f)["consolidated_metadata"]["metadata"]
    variables, coords = {}, {"point", "time"}
    for name, m in nodes.items():
        dtype = np.dtype("<i8" if m["data_type"] == "int64" else "<f8")
        shape, dims = tuple(m["shape"]), tuple(m["dimension_names"])
        codec = m["codecs"][0]
        if codec["name"] == "bytes":
            path = os.path.join(store, name, "c.0")
            data = np.fromfile(path, dtype=dtype).reshape(shape) if os.path.exists(path) else np.full(shape, np.nan)
        else:
            per = int(np.prod(codec["configuration"]["chunk_shape"][1:]))
            slots = m["chunk_grid"]["configuration"]["chunk_shape"][0]
            data = np.full((shape[0], per), np.nan)
            for s in range(-(-shape[0] // slots)):
                path = os.path.join(store, name, "c." + ".".join([str(s)] + ["0"] * (len(shape) - 1)))
                if not os.path.exists(path):
                    continue
                raw = np.fromfile(path, dtype=np.uint8)
                index = raw[len(raw) - 16 * slots :].view("<u8").reshape(slots, 2)
                for k, (off, n) in enumerate(index):
                    if off != np.iinfo(np.uint64).max and s * slots + k < shape[0]:
                        data[s * slots + k] = raw[int(off) : int(off + n)].view("<f8")
            data = data.reshape(shape)
        variables[name] = (dims, data)
        coords.update(m.get("attributes", {}).get("coordinates", "").split())
    ds = xr.Dataset({k: v for k, v in variables.items() if k not in coords})
    return ds.assign_coords({k: v for k, v in variables.items() if k in coords})


def load(path: PathLike):
    """The output folder `path` (of ``neqkin run`` or :func:`run`) as an xarray Dataset.

    Dimensions: ``point`` (finished sweep points, in index order), ``time`` (output
    times; the coordinate holds them) and, for arrays, ``grid`` (``grid_1``, ... when
    arrays of several lengths exist). Coordinates along ``point``: the point index and one
    per sweep axis. Variables: every results.csv column (t_reached, status, steps_*, the
    model's observables, message) and every array of ``results.zarr`` -- the dataset
    ``xr.open_zarr(path / "results.zarr")`` opens on its own, cut to the finished points;
    its static arrays (``grid_x``, an energy grid, a DoS) are coordinates, 1-D when every
    point has the same. ``attrs`` carry the model, the config (JSON) and whether the run is
    complete.
    """
    import pandas as pd
    import xarray as xr

    root = os.fspath(path)
    with open(os.path.join(root, "meta.json"), encoding="utf-8") as f:
        meta = json.load(f)
    csv = os.path.join(root, "results.csv")
    df = pd.read_csv(csv, keep_default_na=False, na_values=["NaN"], dtype={"message": str, "status": str})
    axes = [a["name"] for a in meta["config"].get("sweep", [])]
    # Only points recorded finished count (a cut-off batch may have left rows behind).
    # A line is `point rows arrays` (older folders: `point`); a line torn by a kill has no
    # newline and does not count.
    progress = os.path.join(root, "progress.txt")
    if os.path.exists(progress):
        with open(progress, encoding="utf-8", newline="") as f:
            done = {int(line.split()[0]) for line in f if line.endswith("\n") and line.strip()}
        df = df[df["point"].isin(done)]
    points = np.array(sorted(df["point"].unique()), dtype=np.int64)
    outputs = np.array(sorted(df["output"].unique()), dtype=np.int64)
    pi = {p: i for i, p in enumerate(points)}
    oi = {o: i for i, o in enumerate(outputs)}
    rows = df["point"].map(pi).to_numpy()
    cols = df["output"].map(oi).to_numpy()
    times = df.groupby("output")["t"].first().reindex(outputs).to_numpy(dtype=float)

    coords: dict = {"point": points, "time": times}
    first = df.groupby("point").first().reindex(points)
    for a in axes:
        coords[a] = ("point", first[a].to_numpy(dtype=float))
    data_vars: dict = {}
    skip = {"point", "output", "t", *axes}
    for c in df.columns:
        if c in skip:
            continue
        col = df[c]
        if c in ("status", "message"):
            grid = np.full((len(points), len(outputs)), "", dtype=object)
            grid[rows, cols] = col.fillna("").astype(str).to_numpy()
        else:
            grid = np.full((len(points), len(outputs)), np.nan)
            grid[rows, cols] = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
        data_vars[c] = (("point", "time"), grid)

    ds = xr.Dataset(data_vars=data_vars, coords=coords)
    # The arrays: results.zarr (every point of the sweep), cut to the finished points.
    store = os.path.join(root, "results.zarr")
    if os.path.exists(os.path.join(store, "zarr.json")):
        arrays = _open_store(store).sel(point=points)
        for name, c in arrays.coords.items():
            if name not in ds.coords:
                ds = ds.assign_coords({name: (c.dims, c.values)})
        for name, v in arrays.data_vars.items():
            ds[name] = (v.dims, v.values)
    ds.attrs["model"] = meta["config"].get("model", "")
    ds.attrs["title"] = meta["config"].get("title") or ""
    ds.attrs["config"] = json.dumps(meta["config"])
    ds.attrs["complete"] = int(bool(meta.get("complete")))
    ds.attrs["neqkin_version"] = meta.get("neqkin_version", "")
    ds.attrs["sweep_axes"] = ",".join(axes)
    return ds


def grid(ds):
    """`ds` (of :func:`run` or :func:`load`) on the sweep's grid: the ``point`` dimension
    becomes one dimension per sweep axis, in the config's order (``rate``, ``target``, ...),
    each with its values as the coordinate; points not in the folder (a shard, a run cut
    short) are NaN there. A run without a sweep keeps its single point.

    Raises ValueError when an axis lists a value twice (the grid is then ambiguous).
    """
    axes = [a for a in ds.attrs.get("sweep_axes", "").split(",") if a]
    if not axes:
        return ds
    if len(set(zip(*(ds[a].values.tolist() for a in axes)))) != ds.sizes["point"]:
        raise ValueError("the sweep repeats a point (an axis lists a value twice): keep the `point` dimension")
    if len(axes) == 1:
        return ds.swap_dims(point=axes[0]).drop_vars("point")
    return ds.drop_vars("point").set_index(point=axes).unstack("point").transpose(*axes, ...)


def devices() -> list:
    """The compute devices: the CPU backend, then every GPU adapter found (dicts)."""
    return json.loads(_neqkin.devices())


def models() -> dict:
    """Every model: ``{name: {"starter": ..., "parameters": [{name, default, status,
    unit, range, meaning}, ...]}}`` (status: "default", "required" or "unset: ...")."""
    return {m["name"]: {"starter": m["starter"], "parameters": m["parameters"]} for m in json.loads(_neqkin.models())}


def init(model: str) -> str:
    """A commented starter config (TOML) for `model`, as ``neqkin init MODEL`` prints it."""
    return _neqkin.init_toml(model)


def params(model: str) -> str:
    """The parameter table of `model`, as ``neqkin params MODEL`` prints it."""
    return _neqkin.params_table(model)
