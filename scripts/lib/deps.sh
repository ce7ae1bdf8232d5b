# Installs what building and testing shiftlog needs beyond the Rust toolchain,
# on Debian/Ubuntu, only when it is missing:
#   - PostgreSQL server binaries (initdb, postgres): throwaway servers for tests and the demo;
#   - libclang: the pg_query crate (PostgreSQL's own parser) generates its bindings with bindgen.
# Sourced by scripts/test and scripts/demo.

have_pg_server() {
  command -v initdb >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1 && return 0
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}

have_libclang() {
  [ -n "${LIBCLANG_PATH:-}" ] && return 0
  compgen -G "/usr/lib/llvm-*/lib/libclang.so*" >/dev/null && return 0
  compgen -G "/usr/lib/*/libclang*.so*" >/dev/null && compgen -G "/usr/lib/llvm-*/lib/clang" >/dev/null
}

ensure_deps() {
  local missing=()
  have_pg_server || missing+=(postgresql)
  have_libclang || missing+=(libclang-dev)
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing: ${missing[*]}" >&2
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: ${missing[*]} missing and apt-get is not available: install them with your package manager" >&2
    exit 2
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  # Debian's postgresql package starts a cluster on 5432; the tests never use it.
}
