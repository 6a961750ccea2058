#!/usr/bin/env bash
# The CPU studies on the AdamW recipe (results/studies/configs/<study>-cpu2*.toml), one store per study
# (results/studies/cpu-intel-xeon-<study>-cpu2.jsonl), the most informative studies first and, within a study,
# seed by seed across its arms (a partial store compares every arm). Resumable: each `sslbench sweep` skips the
# cases already in its store, so rerun this script to go on. Run it niced in the background, from the checkout:
#   nohup nice -n 19 env PYTHONPATH=$PWD OMP_NUM_THREADS=2 PYTHON=.venv/bin/python bash results/studies/run-cpu2.sh \
#     > /tmp/sweep.log 2>&1 &
# STUDIES="fft views" runs only those studies; SEEDS="3 4 5" other seeds (the "to settle" hints of `sslbench report`).
# Stop it with kill -TERM -- -PGID (its process group): the running case is recorded as interrupted and resumes.
# (The body is one function, read whole before it runs: editing this file does not disturb a running loop.)
set -u
main() {
  cd "$(dirname "$0")/../.."
  PY=${PYTHON:-python}
  STUDIES=${STUDIES:-"sfrik fft views variance isoloss"}
  SEEDS=${SEEDS:-"0 1 2"}
  for study in $STUDIES; do
    for seed in $SEEDS; do
      for config in results/studies/configs/"$study"-cpu2*.toml; do
        echo "== $(date -u +%H:%M:%S) $study seed $seed $config"
        # arms another grid already trained (same run id): taken from its store, not trained again
        "$PY" results/studies/share_arms.py "$config" "results/studies/cpu-intel-xeon-$study-cpu2.jsonl" \
          results/studies/*-cpu2.jsonl || echo "== share_arms exit $? ($config)"
        "$PY" -m sslbench sweep --config "$config" --seeds "$seed" \
          --out "results/studies/cpu-intel-xeon-$study-cpu2.jsonl" || echo "== exit $? ($config seed $seed)"
      done
    done
  done
  echo "== $(date -u +%H:%M:%S) done"
}
main "$@"
exit
