"""SciPy peer: `solve_ivp` RK45 (the Dormand-Prince 5(4) pair neqkin's dopri5 uses), one sweep
point at a time, vectorised numpy right-hand side from `discretisation.py`."""

import time

from scipy.integrate import solve_ivp

from discretisation import Point


def solve_point(p: Point, t_end=10.0, rtol=1e-6, atol=1e-9):
    """Integrates one point to t_end; returns (sigma/sigma0, rhs evaluations)."""
    sol = solve_ivp(p.numpy_rhs(), (0.0, t_end), p.f0, method="RK45", rtol=rtol, atol=atol, t_eval=[t_end])
    if not sol.success:
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    return p.sigma_over_sigma0(sol.y[:, -1]), sol.nfev


def run(n, zeta, omegas, t_end=10.0):
    """Solves every omega_p in turn. Returns (wall seconds per point, [sigma], [nfev], CPU
    seconds per point); table construction is outside the timing."""
    points = [Point(n, w, zeta) for w in omegas]
    cpu = time.process_time()
    start = time.perf_counter()
    out = [solve_point(p, t_end) for p in points]
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu
    return wall / len(points), [o[0] for o in out], [o[1] for o in out], cpu / len(points)
