#!/usr/bin/env bash
# py-venv.sh NAME - print the path of a Python venv with the pinned packages
# of python/requirements/NAME.txt, creating it first when it is missing.
#
# The venv lives OUTSIDE the clone, in a fixed cache folder
# (GPC_PY_CACHE, default /var/cache/gpucache), named
# venv-NAME-<hash of the requirements file and the interpreter version>:
# a fresh clone, CI and every worktree reuse the same venv, a change of pins
# makes a new one. Creation is serialized with flock and finished by a
# marker file, so an interrupted install is redone, never half-used.
# Progress goes to stderr; stdout carries only the path.
set -euo pipefail
die() { echo "py-venv: $*" >&2; exit 1; }
[ $# -eq 1 ] || die "usage: scripts/py-venv.sh NAME"
NAME=$1
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REQ=$ROOT/python/requirements/$NAME.txt
[ -f "$REQ" ] || die "no $REQ"
PY=${GPC_PYTHON:-$(command -v python3.11 || command -v python3)} ||
	die "no python3"
CACHE=${GPC_PY_CACHE:-/var/cache/gpucache}
pyver=$("$PY" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
hash=$({ cat "$REQ"; echo "$pyver"; } | sha256sum | cut -c1-12)
VENV=$CACHE/venv-$NAME-$hash
mkdir -p "$CACHE"
exec 9>"$CACHE/.venv-$NAME-$hash.lock"
flock 9
if [ ! -f "$VENV/.gpucache-complete" ]; then
	echo "py-venv: creating $VENV (python $pyver, $REQ)" >&2
	rm -rf "$VENV"
	"$PY" -m venv "$VENV" >&2
	start=$SECONDS
	"$VENV/bin/pip" install --quiet --disable-pip-version-check \
		-r "$REQ" >&2 || { rm -rf "$VENV"; die "pip install -r $REQ failed"; }
	cp "$REQ" "$VENV/.gpucache-requirements.txt"
	touch "$VENV/.gpucache-complete"
	echo "py-venv: $VENV ready in $((SECONDS - start)) s" >&2
fi
echo "$VENV"
