# Sourced by scripts/test: the Debian packages some tests need (a real Redis,
# nginx, a browser). `need_commands CMD:PACKAGE ...` installs the package of
# each missing command with apt-get when run as root, else names what to
# install. Under CI=true a package that cannot be installed fails the run:
# the tests that need it must never be skipped silently there.
need_commands() {
  local missing=() pair cmd
  for pair in "$@"; do
    cmd=${pair%%:*}
    command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || [ -x "/usr/bin/$cmd" ] || missing+=("${pair#*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing the Debian packages some tests need: ${missing[*]} (once)..." >&2
    if apt-get update -qq >/dev/null \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
      return 0
    fi
    echo "could not install: ${missing[*]}" >&2
  else
    echo "some tests need these Debian packages: ${missing[*]}; install them with: sudo apt-get install ${missing[*]}" >&2
  fi
  if [ "${CI:-}" = true ]; then
    echo "CI=true: a missing component fails the run" >&2
    exit 1
  fi
  echo "without them, those tests are skipped (they fail under CI=true)" >&2
}
