#!/usr/bin/env bash
# Virtual machines on this host, set up idempotently and without questions:
# QEMU from Debian, a guest kernel taken from Debian's cloud kernel package
# (downloaded and unpacked, never installed), the initramfs with Strata's guest
# init (guest/init), and a small busybox root disk in the image store for tests.
#
#   scripts/vm.sh [all|packages|kernel|initramfs|image]
#
# Everything lands under $STRATA_VM_DIR (default /var/lib/strata-host/vm):
#   kernel/vmlinux           uncompressed kernel: boots via PVH, skipping the decompressor
#   kernel/initramfs.cpio.gz busybox, the virtio modules and guest/init
#   images/busybox.qcow2     a busybox root disk (the image store holds qcow2 or raw files)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
VM="${STRATA_VM_DIR:-/var/lib/strata-host/vm}"
PACKAGES=(qemu-system-x86 qemu-utils kmod cpio lz4 e2fsprogs socat cloud-image-utils genisoimage busybox-static iproute2)
MODULES=(drivers/virtio/virtio.ko drivers/virtio/virtio_ring.ko drivers/virtio/virtio_mmio.ko drivers/virtio/virtio_pci.ko
  drivers/virtio/virtio_pci_legacy_dev.ko drivers/virtio/virtio_pci_modern_dev.ko drivers/block/virtio_blk.ko
  drivers/net/virtio_net.ko drivers/net/net_failover.ko net/core/failover.ko fs/isofs/isofs.ko
  drivers/acpi/button.ko drivers/input/evdev.ko)

. "$HERE/apt.sh"

log() { printf '\033[1m[vm]\033[0m %s\n' "$*" >&2; }

packages() { apt_ensure "${PACKAGES[@]}"; }

# The cloud flavour boots fastest (ext4 built in, few drivers). The version is
# whatever Debian's linux-image-cloud-amd64 points at today; it is recorded in
# kernel/version and kept until removed.
kernel() {
  local want
  want="$(echo "${MODULES[*]}" | sha256sum | cut -c1-16)"
  [ -s "$VM/kernel/vmlinux" ] && [ "$(cat "$VM/kernel/modules.id" 2>/dev/null)" = "$want" ] && return 0
  local pkg work
  pkg="$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/{print $2; exit}')"
  [ -n "$pkg" ] || { log "no linux-image-cloud-amd64 in the package lists"; return 1; }
  log "fetching the guest kernel $pkg (unpacked, not installed)"
  rm -rf "$VM/kernel.new"
  work="$(mktemp -d)"
  (cd "$work" && apt-get download -q "$pkg" >/dev/null 2>&1)
  dpkg-deb -x "$work"/*.deb "$work/root"
  local version vmlinuz offset
  version="$(ls "$work/root/lib/modules")"
  vmlinuz="$work/root/boot/vmlinuz-$version"
  # The bzImage wraps an LZ4 stream (magic 02 21 4c 18); unpacked, it is an
  # ELF vmlinux with a PVH entry point. lz4 complains about the trailer: ignored.
  offset="$(grep -obUaP '\x02\x21\x4c\x18' "$vmlinuz" | head -1 | cut -d: -f1)"
  mkdir -p "$VM/kernel.new/modules/lib/modules/$version/kernel"
  tail -c +"$((offset + 1))" "$vmlinuz" | lz4 -dc > "$VM/kernel.new/vmlinux" 2>/dev/null || true
  head -c 4 "$VM/kernel.new/vmlinux" | grep -q ELF || { log "could not unpack $vmlinuz"; return 1; }
  cp "$vmlinuz" "$VM/kernel.new/vmlinuz"
  local mods="$VM/kernel.new/modules/lib/modules/$version"
  # The package carries no modules.dep (installation makes it): make one to
  # find what each module needs, and take those along.
  depmod -b "$work/root" "$version"
  local all=()
  for m in "${MODULES[@]}"; do
    all+=("kernel/$m")
    for d in $(awk -v m="kernel/$m:" '$1 == m { for (i = 2; i <= NF; i++) print $i }' "$work/root/lib/modules/$version/modules.dep"); do all+=("$d"); done
  done
  for m in $(printf '%s\n' "${all[@]}" | sort -u); do
    mkdir -p "$mods/$(dirname "$m")"
    cp "$work/root/lib/modules/$version/$m" "$mods/$m"
  done
  cp "$work/root/lib/modules/$version"/modules.builtin* "$mods/"
  printf '%s\n' "${all[@]}" > "$mods/modules.order"
  depmod -b "$VM/kernel.new/modules" "$version"
  echo "$want" > "$VM/kernel.new/modules.id"
  echo "$version" > "$VM/kernel.new/version"
  rm -rf "$work" "$VM/kernel"
  mv "$VM/kernel.new" "$VM/kernel"
}

busybox_tree() {
  local dir="$1"
  mkdir -p "$dir/bin" "$dir/sbin" "$dir/etc" "$dir/proc" "$dir/sys" "$dir/dev" "$dir/tmp" "$dir/root" "$dir/run"
  chmod 1777 "$dir/tmp"
  cp /bin/busybox "$dir/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$dir/bin/$applet"
  done
}

# Rebuilt whenever guest/init changes: its hash names the build.
initramfs() {
  local want have work
  want="$(cat "$ROOT/guest/init" "$VM/kernel/version" "$VM/kernel/modules.id" | sha256sum | cut -c1-16)"
  have="$(cat "$VM/kernel/initramfs.id" 2>/dev/null || true)"
  [ "$want" = "$have" ] && [ -s "$VM/kernel/initramfs.cpio.gz" ] && return 0
  log "building the initramfs"
  work="$(mktemp -d)"
  busybox_tree "$work"
  mkdir -p "$work/newroot"
  cp -a "$VM/kernel/modules/lib" "$work/"
  install -m 0755 "$ROOT/guest/init" "$work/init"
  (cd "$work" && find . | cpio -o -H newc --quiet | gzip -1) > "$VM/kernel/initramfs.cpio.gz.new"
  mv "$VM/kernel/initramfs.cpio.gz.new" "$VM/kernel/initramfs.cpio.gz"
  echo "$want" > "$VM/kernel/initramfs.id"
  rm -rf "$work"
}

# A 64 MiB ext4 root disk holding busybox, as a qcow2 base in the image store.
image() {
  [ -s "$VM/images/busybox.qcow2" ] && return 0
  log "building the busybox VM image"
  local work
  work="$(mktemp -d)"
  busybox_tree "$work/rootfs"
  printf 'root:x:0:0:root:/root:/bin/sh\n' > "$work/rootfs/etc/passwd"
  printf 'root:x:0:\n' > "$work/rootfs/etc/group"
  echo 'hello from a strata vm' > "$work/rootfs/etc/motd"
  mkdir -p "$VM/images"
  truncate -s 64M "$work/root.raw"
  mkfs.ext4 -q -F -L strata-root -d "$work/rootfs" "$work/root.raw"
  qemu-img convert -q -f raw -O qcow2 "$work/root.raw" "$VM/images/busybox.qcow2.new"
  mv "$VM/images/busybox.qcow2.new" "$VM/images/busybox.qcow2"
  rm -rf "$work"
}

case "${1:-all}" in
  packages) packages ;;
  kernel) kernel ;;
  initramfs) initramfs ;;
  image) image ;;
  all) packages; kernel; initramfs; image ;;
  *) echo "usage: $0 [all|packages|kernel|initramfs|image]" >&2; exit 2 ;;
esac
