# Sourced by the scripts: make sure .venv exists with the project and the given extras.
# Usage: . scripts/venv.sh "test,fast"
set -euo pipefail
extras=${1:-fast}
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
stamp=.venv/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)-${extras//,/-}
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q -e ".[${extras}]"
  touch "$stamp"
fi
