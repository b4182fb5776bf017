#!/usr/bin/env bash
# Builds the test images from Debian's busybox-static, with no outside
# registry, and pushes them to the local registry:
#   127.0.0.1:5000/library/busybox:latest       sh by default
#   127.0.0.1:5000/library/busybox-http:latest  serves "hello from strata" on :8080
# Skips what the registry already has unless --force.
set -euo pipefail
REGISTRY="127.0.0.1:5000"
FORCE="${1:-}"

has() { curl -sf "http://$REGISTRY/v2/library/$1/tags/list" 2>/dev/null | grep -q "\"$2\""; }

rootfs() {
  local dir="$1"
  mkdir -p "$dir/bin" "$dir/etc" "$dir/tmp" "$dir/root" "$dir/www"
  chmod 1777 "$dir/tmp"
  cp /bin/busybox "$dir/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$dir/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$dir/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$dir/etc/group"
  echo 'hello from strata' > "$dir/www/index.html"
}

build() {
  local name="$1" cmd="$2"
  shift 2
  if [ "$FORCE" != --force ] && has "$name" latest; then return 0; fi
  local work
  work="$(mktemp -d)"
  rootfs "$work/rootfs"
  tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
  podman import --change "CMD $cmd" --change 'ENV PATH=/bin' "$@" "$work/rootfs.tar" "$REGISTRY/library/$name:latest" >/dev/null
  podman push --tls-verify=false "$REGISTRY/library/$name:latest" >/dev/null
  rm -rf "$work"
  echo "pushed $REGISTRY/library/$name:latest" >&2
}

build busybox '["/bin/sh"]'
build busybox-http '["/bin/httpd", "-f", "-p", "8080", "-h", "/www"]' --change 'EXPOSE 8080'
