#!/usr/bin/env bash
# scripts/benchmark_mitigations.sh [ouroboros run options...]: the mitigation
# benchmark in one command. Sets up (scripts/setup.sh), then for each family runs
# its strategy sweeps (experiments/mitigations/*.yaml: real data, filters and
# dedup for Gaussians; real data, a verifier, tail weights and dedup for
# mixtures, the filters also under the pooling regimes; real data and weights
# for n-grams, deduplication and a verifier on real text), plots it and writes
# its ranked report with paired intervals (`ouroboros report`).
# Extra options go to every run (for example --backend cpu, --set chains=1000).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
stamp=$(date -u +%Y%m%d-%H%M%S)
reports=()
for family in gaussian gaussian_filters gaussian_dedup gmm gmm_verifier gmm_weights gmm_dedup gmm_filters_pooled ngram ngram_weights ngram_dedup ngram_verifier; do
  out=runs/mitigations-$stamp/$family
  build/ouroboros run "experiments/mitigations/$family.yaml" --out "$out" "$@"
  /usr/bin/python3 scripts/plot_collapse.py "$out" > /dev/null
  build/ouroboros report "$out" > /dev/null
  reports+=("$out/report.md")
done
echo "reports:"
printf '  %s\n' "${reports[@]}"
