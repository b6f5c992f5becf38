#!/usr/bin/env bash
# Installs everything a fresh Debian 12 machine needs to build, run and test the project.
# Idempotent: packages already present are skipped, so a second run costs a few seconds.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config clang clang-format git ca-certificates curl
  libevent-dev libjansson-dev libpq-dev libcurl4-openssl-dev libssl-dev libzstd-dev zlib1g-dev
  libcmocka-dev libxml2-dev
  postgresql-15 postgresql-client-15 zstd tar openssl
  python3 python3-pytest python3-requests python3-psycopg2 python3-pytest-xdist python3-cryptography
)

# The S3 test server (tests/integration/fixtures/s3.py) runs on node; a machine whose node comes
# from elsewhere (with its own npm) keeps it, otherwise Debian's nodejs and npm are installed.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  PACKAGES+=(nodejs npm)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# s3rver (the S3 test server) from npm into build/s3rver (not committed), once.
S3RVER_VERSION=3.7.1
install_s3rver() {
  local dir pkg
  dir="$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../build/s3rver"
  pkg="$dir/node_modules/s3rver/package.json"
  if [ -f "$pkg" ] && grep -q "\"version\": \"$S3RVER_VERSION\"" "$pkg"; then
    return 0
  fi
  echo "install-deps: installing s3rver $S3RVER_VERSION into $dir"
  mkdir -p "$dir"
  npm install --silent --no-audit --no-fund --prefix "$dir" "s3rver@$S3RVER_VERSION" >/dev/null
}

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  install_s3rver
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# The postgresql package would create and start a default cluster; the project never uses it.
if [ ! -e /etc/postgresql-common/createcluster.conf ] || ! grep -q '^create_main_cluster = false' /etc/postgresql-common/createcluster.conf 2>/dev/null; then
  $SUDO mkdir -p /etc/postgresql-common
  echo 'create_main_cluster = false' | $SUDO tee -a /etc/postgresql-common/createcluster.conf >/dev/null
fi
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
install_s3rver
echo "install-deps: done"
