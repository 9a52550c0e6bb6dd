# Sourced by the scripts: make sure .venv exists with the project and the given extras,
# installed against constraints.txt (the exact versions CI and the container image use).
# Usage: . scripts/venv.sh "test,fast"
# Installers' chatter goes to .venv/install.log, shown only when a step fails.
set -euo pipefail
extras=${1:-fast}
python=${PYTHON:-python3}
install_log=.venv/install.log

# Runs a command with its output in the install log; on failure shows the log and stops.
quietly() {
  local what=$1
  shift
  if ! "$@" >>"$install_log" 2>&1; then
    echo "$what failed; the end of $install_log:" >&2
    tail -n 60 "$install_log" >&2
    exit 1
  fi
}

if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv (one minute; the installers' output goes to $install_log)"
  "$python" -m venv .venv
  quietly "upgrading pip" .venv/bin/python -m pip install -c constraints.txt --upgrade pip
fi
stamp=.venv/.installed-$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)-${extras//,/-}
if [ ! -f "$stamp" ]; then
  quietly "installing the project into .venv" \
    .venv/bin/python -m pip install -c constraints.txt --build-constraint constraints.txt \
    -e ".[${extras}]"
  touch "$stamp"
fi
