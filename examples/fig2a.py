"""Fig 2a of Chiriacò, Millis, Aleiner: σ/σ0 against ω_p for ζ = 1, 5, 20 (T/W = 0.003, t = 10/Γ_eph).

    pip install ./python matplotlib && python examples/fig2a.py [fig2a.png]   # from the repository root
"""
import sys
import neqkin

ds = neqkin.grid(neqkin.run("configs/photoexcited/fig2a.toml", out="results/fig2a_python", force=True))
sigma = ds.sigma_over_sigma0.isel(time=-1)  # dims (phonon_frequency, zeta)
try:
    import matplotlib.pyplot as plt
except ImportError:  # no matplotlib: the numbers
    sys.exit(print(sigma.to_pandas().to_string()))
sigma.plot.line(x="phonon_frequency", hue="zeta")
plt.axhline(0, color="k", lw=0.5); plt.xlabel("ω_p / W"); plt.ylabel("σ / σ0"); plt.title("Fig 2a, t = 10/Γ_eph")
plt.savefig(sys.argv[1] if len(sys.argv) > 1 else "results/fig2a.png", dpi=120)
