#!/usr/bin/env bash
# The newcomer's path, as CI's stage of it: the README's install-and-run lines, exactly as
# the README prints them (scripts/readme_commands.py reads them out of it; env runs get
# the README's smoke-test flag), each in a fresh virtual environment holding only what
# that line installs, from a copy of the source tree with nothing built.
#
#   bash scripts/newcomer_path.sh            # base, then marl, then rlhf
#
# base: the README's first line, then `rlkit list`, `rlkit eval` and `rlkit resume` of its
# run, and a stage whose extra is missing refused in one line. marl: the MAPPO line in the
# base environment plus the marl extra alone. rlhf: every rlhf line in a new environment.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/rlkit-newcomer.XXXXXX")
trap 'rm -rf "$work"' EXIT
export PIP_DISABLE_PIP_VERSION_CHECK=1 MUJOCO_GL=${MUJOCO_GL:-egl} HF_HUB_OFFLINE=1
export WANDB_MODE=offline PIP_QUIET=1

# the tree a clone has: tracked files and new ones git does not ignore (links kept)
mkdir "$work/rlkit"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp -P --parents -t "$work/rlkit")
cd "$work/rlkit"

readme_lines() { python3 "$repo/scripts/readme_commands.py" "$1"; }

run_lines() {  # every README line of extra $1, in the active environment
  local line
  while IFS= read -r line; do
    echo "+ [$(date +%T)] $line"
    bash -euo pipefail -c "$line"
  done < <(readme_lines "$1")
}

refused() {  # $1: what; the rest: the command, which must exit 2 with one line naming pip install
  local what=$1 err
  shift
  if err=$("$@" 2>&1 >/dev/null); then
    echo "newcomer: '$*' ran, but it needs $what, which is not installed" >&2
    exit 1
  fi
  [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] && [[ $err == *"pip install"* ]] || {
    printf 'newcomer: %s: expected one line with the install command, got:\n%s\n' "$*" "$err" >&2
    exit 1
  }
  echo "refused as it should be: $err"
}

echo "== newcomer [$(date +%T)]: the base install (no extra)"
python3 -m venv "$work/venv-base"
# shellcheck disable=SC1091
. "$work/venv-base/bin/activate"
run_lines base
rlkit list
(cd "$work" && python -) <<'EOF'  # from outside the tree: the installed package
import sys

import rlkit.algorithms

names = set(rlkit.algorithms.ALGORITHMS)
assert {"ppo", "dqn", "sac"} <= names, names
heavy = sorted(m for m in ("transformers", "pettingzoo", "ray", "wandb") if m in sys.modules)
assert not heavy, f"import rlkit.algorithms imported {heavy}"
EOF
run=$(ls -d runs/ppo-Humanoid-s0-*)
rlkit eval "$run" --episodes 1
rlkit resume "$run" --total-steps 4096
refused "the rlhf extra" rlkit run sft --data data/sft.jsonl
refused "the marl extra" rlkit run mappo --env simple_spread

echo "== newcomer [$(date +%T)]: the marl extra alone"
run_lines marl
refused "the rlhf extra" rlkit run dpo --data data/prefs.jsonl
deactivate

echo "== newcomer [$(date +%T)]: the rlhf extra alone"
python3 -m venv "$work/venv-rlhf"
# shellcheck disable=SC1091
. "$work/venv-rlhf/bin/activate"
run_lines rlhf
rlkit eval runs/dpo-demo
refused "the marl extra" rlkit plan mappo --env simple_spread
deactivate
echo "== newcomer [$(date +%T)]: every README line ran"
