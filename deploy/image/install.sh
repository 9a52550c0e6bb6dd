#!/bin/sh
# Installs nova-gateway from this source tree into a new virtualenv at PREFIX, every
# package at the version constraints.txt pins (pip included), then checks the result.
# The container image's build stage runs exactly this; so does CI, in a fresh virtualenv.
# Usage: deploy/image/install.sh PREFIX      (PYTHON=python3.11 to choose the interpreter)
set -eu
prefix=${1:?usage: install.sh PREFIX}
source_dir=$(cd "$(dirname "$0")/../.." && pwd)
python=${PYTHON:-python3}
constraints=$source_dir/constraints.txt

"$python" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else
    "nova-gateway is pinned and tested on Python 3.11, not %d.%d" % sys.version_info[:2])'
"$python" -m venv "$prefix"
pip="$prefix/bin/python -m pip --disable-pip-version-check --no-input"
$pip install --quiet --constraint "$constraints" --upgrade pip
# Not editable, and the fast extra (uvloop) only: no test tools in a production install.
$pip install --quiet --constraint "$constraints" --build-constraint "$constraints" \
    "$source_dir[fast]"
$pip check
# Every module imports, and the command answers (the policy linter reads the shipped
# policies against Nova's defaults without a network or a configuration file).
"$prefix/bin/python" -c 'import gateway.cli, gateway.web.server, gateway.demo, uvloop'
"$prefix/bin/nova-gateway" policy lint --policy-dir "$source_dir/policies" >/dev/null
echo "nova-gateway installed in $prefix"
