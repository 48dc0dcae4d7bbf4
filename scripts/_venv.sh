# Sourced by the other scripts: make .venv if it is missing and install the
# project into it (editable) with the extras named in $EXTRAS.
#
# PYTHON picks the interpreter that makes .venv (default python3; 3.11+).
# Installing again is skipped while setup.cfg and pyproject.toml are unchanged
# and the extras asked for are installed: pip takes seconds even with nothing to do.
set -euo pipefail
# -P: through a symlink to scripts/ (as the docs' tests make), still the checkout's top.
cd -P "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
_script=$(basename "$0")
_stamp=.venv/.rpc-tools-installed

_python_ok() {
  "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1
}

if [ -e .venv ] && ! _python_ok .venv/bin/python; then
  echo "$_script: .venv does not run Python 3.11+ (made by an older Python, or broken); making it again" >&2
  rm -rf .venv
fi

if [ ! -e .venv ]; then
  # Check first: with an older Python, pip's own error ("No matching
  # distribution found for websockets") names the wrong culprit.
  if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "$_script: cannot find $PYTHON; rpc-tools needs Python 3.11 or newer." >&2
    echo "Name one with PYTHON, e.g.: PYTHON=python3.12 $0" >&2
    exit 1
  fi
  if ! _python_ok "$PYTHON"; then
    _version=$("$PYTHON" -c 'import platform; print(platform.python_version())' 2>/dev/null || echo "unknown")
    echo "$_script: $PYTHON is Python $_version; rpc-tools needs Python 3.11 or newer." >&2
    echo "Name another with PYTHON, e.g.: PYTHON=python3.12 $0" >&2
    exit 1
  fi
  echo "$_script: setting up .venv with $PYTHON (first run, about a minute)..." >&2
  # A half-made .venv would fail every later run: remove it unless setting up completes.
  trap 'rm -rf .venv; echo "$_script: setting up .venv failed; removed it" >&2' EXIT
  "$PYTHON" -m venv .venv
  _fresh=1
fi

_extras_wanted=${EXTRAS:-}
_want="$(cat setup.cfg pyproject.toml | sha256sum | cut -d' ' -f1) $_extras_wanted"
_have=$(cat "$_stamp" 2>/dev/null || true)
_installed() {
  # Same project files, and every extra asked for among those installed.
  [ "${_have%% *}" = "${_want%% *}" ] || return 1
  local extra
  for extra in ${_extras_wanted//,/ }; do
    case ",${_have#* }," in *",$extra,"*) ;; *) return 1 ;; esac
  done
}
if ! _installed; then
  if [ -z "${_fresh:-}" ]; then
    echo "$_script: installing rpc-tools${_extras_wanted:+[$_extras_wanted]} into .venv..." >&2
  fi
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${_extras_wanted:+[$_extras_wanted]}"
  # Extras installed before stay installed: keep them in the stamp.
  _extras=$_extras_wanted
  if [ "${_have%% *}" = "${_want%% *}" ] && [ -n "${_have#* }" ] && [ "${_have#* }" != "$_have" ]; then
    _extras="${_have#* }${_extras:+,$_extras}"
  fi
  echo "${_want%% *} $_extras" >"$_stamp"
fi
trap - EXIT
