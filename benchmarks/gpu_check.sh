#!/usr/bin/env bash
# The one-call GPU check: proves gan's CUDA path and measures it on a bare GPU machine
# (its own Python with torch, no package registry, only this working tree).
#
#   benchmarks/gpu_check.sh --prepare        # here, where pip reaches a registry and ../shared exists: wheels,
#                                            # the baseline and 5,000 real faces at 128 px into benchmarks/.gpu_check/
#   benchmarks/gpu_check.sh [OUT_DIR [ARGS]] # on the GPU machine: offline install, then the checks (ARGS: gpu_check.py --help);
#                                            # results in OUT_DIR (default $OUT, else ./gpu_check_out)
#   benchmarks/gpu_check.sh --dry-run [DIR]  # the same sequence on the CPU at toy sizes (a test runs it)
#
# benchmarks/.gpu_check/ is git-ignored: carry it to the GPU machine with the tree.
set -euo pipefail
cd "$(dirname "$0")/.."
PREPARED=benchmarks/.gpu_check
SHARED=../shared

case "${1:-}" in
  -h|--help)
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'  # the usage above, with no side effects
    exec python benchmarks/gpu_check.py --help
    ;;
  --prepare)
    for needed in "$SHARED/bench/baseline.py" "$SHARED/data/faces_wild/train"; do  # checked before anything goes
      [ -e "$needed" ] || { echo "gpu_check.sh --prepare: '$needed' is missing (it reads ../shared beside the" \
                                 "checkout); run it in a checkout that has it" >&2; exit 2; }
    done
    rm -rf "$PREPARED" && mkdir -p "$PREPARED/wheels"
    # torch-fidelity (pure Python) is what a torch image usually lacks; the rest is there.
    python -m pip download -q --no-deps --only-binary=:all: -d "$PREPARED/wheels" "torch-fidelity>=0.4,<0.5"
    cp "$SHARED/bench/baseline.py" "$PREPARED/baseline.py"
    python benchmarks/gpu_check.py --prepare-faces "$SHARED/data/faces_wild/train"  # 4,500 train + 500 held out
    # the results name what they measured: the commit, and its files, which the GPU machine (no .git)
    # compares its copy of the tree with (a commit or an edit after --prepare is said in the results)
    git describe --always > "$PREPARED/commit.txt"
    git ls-tree -r HEAD > "$PREPARED/tree.txt"
    du -sh "$PREPARED"
    exit 0
    ;;
  --dry-run)
    shift
    exec python benchmarks/gpu_check.py --dry-run --out "${1:-gpu_check_out}" "${@:2}"
    ;;
esac

if [[ "${1:-}" == -* ]]; then  # (an option where OUT_DIR goes: a typo, not a folder to install and write into)
  echo "gpu_check.sh: unknown option '$1': give --prepare, --dry-run, --help, or OUT_DIR first" >&2
  exit 2
fi
PYTHON=${PYTHON:-python3}
if ! (cd / && "$PYTHON" -c "import gan") 2>/dev/null; then
  "$PYTHON" -m pip install -q --no-deps --no-build-isolation -e . || export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
if ! "$PYTHON" -c "import torch_fidelity" 2>/dev/null && compgen -G "$PREPARED/wheels/*.whl" >/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps "$PREPARED"/wheels/*.whl
fi
exec "$PYTHON" benchmarks/gpu_check.py --out "${1:-${OUT:-gpu_check_out}}" "${@:2}"
