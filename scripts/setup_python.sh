#!/usr/bin/env bash
# Creates the project's Python environment, ./.venv (ignored by git; never the system Python), and
# installs the pinned packages of the requirement files named as arguments (default: test), e.g.
#   bash scripts/setup_python.sh test
# Idempotent: a file already installed (its checksum recorded in .venv) is skipped without the
# network. Prints the environment's python path on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv
python=${SEFAR_PYTHON:-python3}
if [[ ! -x $venv/bin/python ]]; then
  "$python" -m venv "$venv" || {
    echo "setup_python: cannot create $venv with $python (Debian: apt-get install python3-venv)" >&2
    exit 1
  }
fi
groups=("$@")
[[ ${#groups[@]} -eq 0 ]] && groups=(test)
for group in "${groups[@]}"; do
  req=scripts/requirements/$group.txt
  [[ -f $req ]] || { echo "setup_python: no requirement file $req" >&2; exit 1; }
  stamp=$venv/.installed-$group
  sum=$(sha256sum "$req" | cut -d' ' -f1)
  if [[ -f $stamp && $(cat "$stamp") == "$sum" ]]; then continue; fi
  echo "setup_python: installing $req into $venv" >&2
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req" >&2
  echo "$sum" >"$stamp.tmp" && mv "$stamp.tmp" "$stamp"
done
echo "$PWD/$venv/bin/python"
