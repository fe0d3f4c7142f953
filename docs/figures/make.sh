#!/usr/bin/env bash
# Regenerates docs/figures/<model>_<config>.png: runs each shipped config on the CPU backend
# and draws it with `neqkin plot`. Run from the repository root after `cargo build --release`:
#
#   docs/figures/make.sh                      # every config
#   docs/figures/make.sh photoexcited/fig2a   # only the configs whose path contains a word
#
# NEQKIN (default target/release/neqkin, or $CARGO_TARGET_DIR/release/neqkin) and RUNS (the
# output folders, default /tmp/neqkin-figures) can be set. The wall time of every run is
# printed (SKIP=word leaves configs out; PLOT_ONLY=1 redraws the existing runs without running them); a run is stopped after
# LIMIT seconds (default 900). Two configs are too long for the machine the pictures were made
# on and run reduced here (the reduction is in the name of the derived config and in
# docs/figures/README.md):
#   interband/fig2_phase_diagram: the paper grid (dk = 2e-3) on an 8 × 8 grid over the same (Ω, V)
#   ranges; interband/fig2_phase_diagram_coarse: dk = 0.01 on a 16 × 16 grid (the 64 × 64 run
#   takes 4 min 20 s on a quiet 2-core machine, docs/models/interband.md, but was not feasible
#   on the loaded one these pictures were made on).

set -u
cd "$(dirname "$0")/../.."
NEQKIN=${NEQKIN:-${CARGO_TARGET_DIR:-target}/release/neqkin}
RUNS=${RUNS:-/tmp/neqkin-figures}
mkdir -p "$RUNS"

# 256-colour palette (pngquant) and recompression (optipng) where installed: a few dozen kB
# per picture instead of a few hundred.
shrink() {
    command -v pngquant > /dev/null && pngquant --force --skip-if-larger --quality=80-100 --output "$1" "$1"
    command -v optipng > /dev/null && optipng -quiet -o2 "$1"
    return 0
}

# fig CONFIG [SED-EXPRESSION SUFFIX]: run CONFIG (or a copy edited by the sed expression,
# written to $RUNS/<name>_<suffix>.toml) and draw docs/figures/<model>_<config>.png.
fig() {
    local cfg=$1 edit=${2:-} suffix=${3:-}
    local name
    name=$(basename "$(dirname "$cfg")")_$(basename "$cfg" .toml)
    if [ -n "$ONLY" ] && [[ "$cfg" != *"$ONLY"* ]]; then return; fi
    if [ -n "$edit" ]; then
        sed -e "$edit" "$cfg" > "$RUNS/${name}_$suffix.toml"
        cfg="$RUNS/${name}_$suffix.toml"
    fi
    local t0 t1
    if [ -n "${PLOT_ONLY:-}" ]; then
        "$NEQKIN" plot "$RUNS/$name" --png "docs/figures/$name.png" && shrink "docs/figures/$name.png"
        return
    fi
    t0=$(date +%s.%N)
    # SIGINT after LIMIT seconds: the run stops after the batch in flight (resumable) and
    # the picture shows the points finished by then; killed 30 s later if that batch is
    # still running.
    timeout --signal=INT --kill-after=30 "${LIMIT:-900}" "$NEQKIN" run "$cfg" --out "$RUNS/$name" --backend cpu --force 2> "$RUNS/$name.log"
    local rc=$?
    t1=$(date +%s.%N)
    printf '%-45s exit %d  %7.1f s  ' "$cfg" "$rc" "$(echo "$t1 - $t0" | bc)"
    if "$NEQKIN" plot "$RUNS/$name" --png "docs/figures/$name.png" 2>> "$RUNS/$name.log"; then
        shrink "docs/figures/$name.png"
        echo "docs/figures/$name.png $(stat -c %s "docs/figures/$name.png") bytes"
    else
        echo "plot failed: $(tail -1 "$RUNS/$name.log")"
    fi
}

ONLY=${1:-}
for cfg in configs/photoexcited/*.toml configs/eliashberg/*.toml configs/cavity/*.toml configs/interband/*.toml; do
    if [ -n "${SKIP:-}" ] && [[ "$cfg" == *"$SKIP"* ]]; then continue; fi
    case "$cfg" in
        configs/interband/fig2_phase_diagram.toml)
            fig "$cfg" 's/^linspace = \[0.0, 0.5, 64\]/linspace = [0.0, 0.5, 8]/; s/^linspace = \[0.0, 8.0, 64\]/linspace = [0.0, 8.0, 8]/' 8x8
            ;;
        configs/interband/fig2_phase_diagram_coarse.toml)
            fig "$cfg" 's/^linspace = \[0.0, 0.5, 64\]/linspace = [0.0, 0.5, 16]/; s/^linspace = \[0.0, 8.0, 64\]/linspace = [0.0, 8.0, 16]/' 16x16
            ;;
        *) fig "$cfg" ;;
    esac
done
