"""neqkin's photoexcited discretisation rebuilt in numpy, for the peer benchmarks.

Exactly the grid and tables of `src/models/photoexcited/` (see docs/models/photoexcited.md):
N uniform cells on [-W/2, W/2], the semicircular DoS as cell averages of the continuum DoS
(exact integral over each cell), floor 1e-4/W, renormalised to sum h D_i = 1, constant
v^2 tau transport (sigma~ = D), face tables D_i D_{i+1} and sqrt(sigma~_i sigma~_{i+1}),
mu by bisection on the discrete Fermi-Dirac number, sigma0 = sigma~(mu) by linear
interpolation, and the phonon line at omega_p projected on the two grid shifts
k = floor(omega_p/h) (weight 1 - theta) and k + 1 (weight theta), each with its own Bose
factor 1/(e^{kh/T} - 1).

Pair form of St_el (one rate per pair, applied to both cells):
    R_ul = c_k D_u D_l [ (zeta + b_k + 1) f_u (1 - f_l) - (zeta + b_k) f_l (1 - f_u) ],  u = l + k
    D_l df_l/dt += R_ul,   D_u df_u/dt -= R_ul.
The inelastic (Gamma_in) and field (E) terms are included for completeness; the sweep
benchmarked (Fig 2a type) has both prefactors zero, and then neither peer nor neqkin
evaluates them.
"""

import math

import numpy as np

D_FLOOR = 1e-4


def fermi(e, mu, t):
    """Fermi-Dirac occupation, evaluated as in dos.rs (no overflow on either side)."""
    x = (np.asarray(e, dtype=float) - mu) / t
    q = np.exp(-np.abs(x))
    return np.where(x > 0.0, q / (1.0 + q), 1.0 / (1.0 + q))


class Point:
    """Tables and parameters of one sweep point (fixed zeta, Fig 2a type)."""

    def __init__(self, n, omega_p, zeta, temperature=0.003, filling=0.5, width=1.0, coupling=1.0,
                 inelastic_rate=0.0, electric_field=0.0):
        w = width
        h = w / n
        eps = -0.5 * w + (np.arange(n) + 0.5) * h

        def cdf(x):
            return 0.5 + (x * np.sqrt(np.maximum(1.0 - x * x, 0.0)) + np.arcsin(np.clip(x, -1.0, 1.0))) / math.pi

        dos = (cdf(2.0 * (eps + 0.5 * h) / w) - cdf(2.0 * (eps - 0.5 * h) / w)) / h
        dos = np.maximum(dos, D_FLOOR / w)
        dos = dos / (math.fsum(dos) * h)
        sigma_tilde = dos.copy()  # transport = constant_v2_tau
        # Chemical potential: bisection on the discrete FD number (dos.rs::chemical_potential).
        lo, hi = -w, w
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if math.fsum(h * dos * fermi(eps, mid, temperature)) < filling:
                lo = mid
            else:
                hi = mid
            if hi - lo < 1e-14 * w:
                break
        mu = 0.5 * (lo + hi)

        def interpolate(values, e):
            x = (e - eps[0]) / h
            if x <= 0.0:
                return values[0]
            if x >= n - 1:
                return values[n - 1]
            i = int(math.floor(x))
            t = x - i
            return values[i] * (1.0 - t) + values[i + 1] * t

        d_f = interpolate(dos, mu)
        sigma0 = interpolate(sigma_tilde, mu)
        s_f = sigma0 / d_f
        # Phonon line projected on the grid (PhononLines::project, width 0).
        x = omega_p / h
        m = math.floor(x)
        theta = x - m
        lines = [(k, wk) for k, wk in ((m, 1.0 - theta), (m + 1, theta)) if k >= 1 and wk > 1e-14]
        total = sum(wk for _, wk in lines)
        self.lines = []  # (k, c_k, b_k)
        for k, wk in lines:
            b = 1.0 / math.expm1(k * h / temperature)
            self.lines.append((k, coupling * w * wk / total, b))
        self.n, self.h, self.eps, self.dos, self.mu, self.sigma0 = n, h, eps, dos, mu, sigma0
        self.inv_dos = 1.0 / dos
        self.d2_face = dos[:-1] * dos[1:]
        self.sigma_face = np.sqrt(sigma_tilde[:-1] * sigma_tilde[1:])
        self.zeta = zeta
        self.in_pref = inelastic_rate / d_f * temperature / h
        self.tanh_h = math.tanh(0.5 * h / temperature)
        self.field = electric_field ** 2 / (3.0 * s_f)
        self.f0 = fermi(eps, mu, temperature)

    def sigma_over_sigma0(self, f):
        """Discrete Eq 9: sum_i sigma~_{i+1/2} (f_i - f_{i+1}) / sigma0."""
        return float(np.dot(self.sigma_face, f[:-1] - f[1:]) / self.sigma0)

    def numpy_rhs(self):
        """A vectorised numpy right-hand side f -> df/dt (constants hoisted per line)."""
        n = self.n
        pairs = []
        for k, c, b in self.lines:
            a = self.zeta + b
            pairs.append((k, c * self.dos[k:] * self.dos[: n - k], a + 1.0, a))
        inv_dos, pref, tanh_h, field, inv_h = self.inv_dos, self.in_pref, self.tanh_h, self.field, 1.0 / self.h
        d2, sg = self.d2_face, self.sigma_face

        def rhs(_t, f):
            acc = np.zeros(n)
            for k, cdd, ap1, a in pairs:
                fu = f[k:]
                fl = f[: n - k]
                r = cdd * (ap1 * fu * (1.0 - fl) - a * fl * (1.0 - fu))
                acc[: n - k] += r
                acc[k:] -= r
            if pref != 0.0:
                fl, fu = f[:-1], f[1:]
                flux = pref * d2 * ((1.0 + tanh_h) * fu * (1.0 - fl) - (1.0 - tanh_h) * fl * (1.0 - fu))
                acc[:-1] += flux * inv_h
                acc[1:] -= flux * inv_h
            if field != 0.0:
                g = field * sg * (f[1:] - f[:-1]) * inv_h * inv_h
                acc[:-1] += g
                acc[1:] -= g
            return acc * inv_dos

        return rhs
