#!/bin/sh
# Debian packages the tests drive, installed when missing, so `make test` passes on a fresh
# machine. Arguments are PROGRAM=PACKAGE pairs: PACKAGE is installed when PROGRAM (a path, or a
# name looked up on PATH) is missing. The missing ones share one `apt-get update`, run only when
# something is missing, so a machine that has them all never touches the package lists.
set -eu

missing=""
for pair in "$@"; do
  program=${pair%%=*}
  package=${pair#*=}
  case $program in
    */*) [ -x "$program" ] && continue ;;
    *) command -v "$program" >/dev/null 2>&1 && continue ;;
  esac
  missing="$missing $package"
done
[ -n "$missing" ] || exit 0

echo "installing Debian's$missing for the tests"
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "missing:$missing. Install them from Debian's packages (apt-get install$missing) as root." >&2
  exit 1
fi
apt-get update -qq
# shellcheck disable=SC2086 # one word per package
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing  # with recommends: Chromium's fonts
