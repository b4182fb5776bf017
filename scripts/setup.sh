#!/usr/bin/env bash
# Installs what Strata needs on a Debian 12 machine, idempotently and without
# questions: Debian packages, Node 24 LTS (from the npm registry, into .tools/,
# when the system Node is older) and the npm dependencies.
# Source it (`. scripts/setup.sh`) to get the right node on PATH.
set -euo pipefail

STRATA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NODE_VERSION="24.21.0"
NODE_DIR="$STRATA_ROOT/.tools/node"
export STRATA_ROOT

log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }

# Debian packages the control plane and its tests use.
# procps (pgrep) and bsdutils (script, a terminal for `exec -it` tests) are used by the tests.
APT_PACKAGES=(ca-certificates python3 make g++ sqlite3 procps bsdutils)
. "$STRATA_ROOT/scripts/apt.sh"

node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

install_node() {
  if command -v node >/dev/null && [ "$(node_major node)" -ge 24 ]; then return 0; fi
  local bin="$NODE_DIR/node_modules/node/bin/node"
  if [ ! -x "$bin" ] || [ "$("$bin" --version)" != "v$NODE_VERSION" ]; then
    log "installing Node $NODE_VERSION from the npm registry into .tools/node"
    mkdir -p "$NODE_DIR"
    (cd "$NODE_DIR" && echo '{"private":true}' > package.json &&
      npm install --no-save --no-audit --no-fund --loglevel=error "node@$NODE_VERSION" >/dev/null)
  fi
  export PATH="$NODE_DIR/node_modules/node/bin:$PATH"
}

install_deps() {
  local stamp="$STRATA_ROOT/node_modules/.strata-stamp"
  local want
  want="$(node --version) $(sha256sum "$STRATA_ROOT/package-lock.json" | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  log "installing npm dependencies"
  (cd "$STRATA_ROOT" && npm ci --no-audit --no-fund --loglevel=error --allow-scripts=better-sqlite3 >/dev/null 2>&1 ||
    npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  echo "$want" > "$stamp"
}

# Containers: Podman's Docker API, a local registry and the test images
# (scripts/podman.sh). Needs root; without it Strata runs but offers no
# container driver on this machine.
install_podman() {
  if [ "$(id -u)" = 0 ] || sudo -n true 2>/dev/null; then
    as_root bash "$STRATA_ROOT/scripts/podman.sh" all
  else
    log "not root: skipping Podman; this machine's agent will offer no container driver"
  fi
}

# Virtual machines: QEMU, a guest kernel, the initramfs and a test image
# (scripts/vm.sh). Needs root too.
install_vm() {
  if [ "$(id -u)" = 0 ] || sudo -n true 2>/dev/null; then
    as_root bash "$STRATA_ROOT/scripts/vm.sh" all
  else
    log "not root: skipping QEMU; this machine's agent will offer no vm driver"
  fi
}

# Bare metal: IPMI tools, dnsmasq, iPXE, isolinux and the deploy ramdisk
# (scripts/metal.sh). Needs root too.
install_metal() {
  if [ "$(id -u)" = 0 ] || sudo -n true 2>/dev/null; then
    as_root bash "$STRATA_ROOT/scripts/metal.sh" all
  else
    log "not root: skipping bare metal; this machine's agent will offer no metal driver"
  fi
}

apt_ensure "${APT_PACKAGES[@]}"
install_node
install_deps
install_podman
install_vm
install_metal
log "ready: node $(node --version), strata at $STRATA_ROOT/bin/strata"
