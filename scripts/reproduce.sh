#!/usr/bin/env bash
# scripts/reproduce.sh [NAME ...]: sets up and builds (scripts/setup.sh), runs
# the paper reproductions of experiments/papers/ at full size, checks every
# declared claim and writes docs/reproductions.md with the pictures
# (scripts/reproduce.py says how claims are checked). Non-zero when a claim
# does not hold.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec /usr/bin/python3 scripts/reproduce.py "$@"
