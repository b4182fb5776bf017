#!/usr/bin/env bash
# Podman's Docker-compatible API and a local OCI registry on this machine,
# set up idempotently and without questions (root, no systemd needed).
#
#   scripts/podman.sh [all|packages|configure|service|registry|image]
#
# Why each setting: docs/host-setup.md.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SOCKET="${STRATA_PODMAN_SOCKET:-/run/podman/podman.sock}"
REGISTRY="127.0.0.1:5000"
STATE="/var/lib/strata-host"
PACKAGES=(podman runc conmon netavark aardvark-dns iptables nftables catatonit uidmap skopeo docker-registry busybox-static curl)

. "$HERE/apt.sh"

log() { printf '\033[1m[podman]\033[0m %s\n' "$*" >&2; }

packages() { apt_ensure "${PACKAGES[@]}"; }

configure() {
  local nofile
  nofile="$(ulimit -Hn)"
  [ "$nofile" = unlimited ] && nofile=1048576
  mkdir -p /etc/containers/containers.conf.d /etc/containers/registries.conf.d
  cat > /etc/containers/containers.conf.d/50-strata.conf <<CONF
# Written by Strata's scripts/podman.sh.
[containers]
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
  cat > /etc/containers/registries.conf.d/50-strata-local.conf <<CONF
# Written by Strata's scripts/podman.sh: the local test registry speaks plain
# HTTP, and so does the authenticating proxy tests put before it on :5001.
[[registry]]
location = "${REGISTRY}"
insecure = true

[[registry]]
location = "127.0.0.1:5001"
insecure = true
CONF
}

answers() { curl -sf --max-time 2 --unix-socket "$SOCKET" http://d/_ping >/dev/null 2>&1; }

service() {
  answers && return 0
  log "starting podman system service on $SOCKET"
  mkdir -p "$(dirname "$SOCKET")" "$STATE"
  rm -f "$SOCKET"
  # From its state directory: conmon leaves files (an `oom` marker) in the
  # service's working directory.
  # `exec` and the redirections on the whole group: no shell stays behind
  # holding the caller's stdout open (a pipe into `tee` would never end).
  (cd "$STATE" && exec setsid nohup podman system service --time=0 "unix://$SOCKET") >>"$STATE/podman-service.log" 2>&1 < /dev/null &
  for _ in $(seq 1 100); do answers && return 0; sleep 0.1; done
  log "podman service did not answer; see $STATE/podman-service.log"
  return 1
}

registry_answers() { curl -sf --max-time 2 "http://$REGISTRY/v2/" >/dev/null 2>&1; }

registry() {
  registry_answers && return 0
  log "starting the local registry on $REGISTRY"
  mkdir -p "$STATE/registry"
  cat > "$STATE/registry.yml" <<CONF
version: 0.1
storage:
  filesystem:
    rootdirectory: $STATE/registry
http:
  addr: $REGISTRY
log:
  level: warn
CONF
  (cd "$STATE" && exec setsid nohup docker-registry serve "$STATE/registry.yml") >>"$STATE/registry.log" 2>&1 < /dev/null &
  for _ in $(seq 1 100); do registry_answers && return 0; sleep 0.1; done
  log "registry did not answer; see $STATE/registry.log"
  return 1
}

# Strata makes a network per project on each host and removes it with the
# project's last container; one left over by an agent that was killed first
# holds a subnet of Podman's pool. Unused ones are removed (made again on demand).
networks() { podman network prune -f --filter label=io.strata.project >/dev/null 2>&1 || true; }

case "${1:-all}" in
  packages) packages ;;
  configure) configure ;;
  service) service ;;
  registry) registry ;;
  image) bash "$HERE/build-test-image.sh" ;;
  networks) networks ;;
  all) packages; configure; service; registry; networks; bash "$HERE/build-test-image.sh" ;;
  *) echo "usage: $0 [all|packages|configure|service|registry|image|networks]" >&2; exit 2 ;;
esac
