#!/usr/bin/env bash
# Install what the SLURM end-to-end test (tests/test_slurm.py) needs: Debian's slurm-wlm
# (slurmctld, slurmd, client commands) and munge. The Snakemake SLURM executor plugin comes
# from requirements.txt.
# Idempotent and non-interactive. The test writes its own slurm.conf and starts its own
# daemons in a temporary directory, so nothing is configured or started here.
# Without root or apt-get it does nothing, and the test skips itself with the reason.
set -euo pipefail

if command -v sbatch >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
    && command -v pgrep >/dev/null; then
    echo "slurm-setup: slurm-wlm and munge already installed"
elif [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "slurm-setup: not root or no apt-get; the SLURM test will be skipped" >&2
    exit 0
else
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # Package scripts must not start daemons (containers have no init to start them with).
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy"
        chmod +x "$policy"
        trap 'rm -f "$policy"' EXIT
    fi
    # procps: pgrep, which the test uses to prove no daemon outlived it.
    apt-get install -y -qq --no-install-recommends slurm-wlm munge procps >/dev/null
    echo "slurm-setup: installed $(sinfo --version) and $(munged --version 2>&1 | head -n1)"
fi
