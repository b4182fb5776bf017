#!/usr/bin/env bash
# Bare-metal provisioning on this host, set up idempotently and without
# questions: the Debian packages a conductor uses (IPMI tools and simulator,
# dnsmasq for DHCP/TFTP, iPXE, isolinux for virtual-media ISOs), and the
# deploy ramdisk a node boots to be inspected, cleaned or deployed
# (guest/ramdisk-init, busybox, the virtio modules, util-linux's sfdisk and wipefs).
#
#   scripts/metal.sh [all|packages|ramdisk]
#
# Everything lands under $STRATA_METAL_DIR (default /var/lib/strata-host/metal):
#   deploy/vmlinuz            Debian's cloud kernel (scripts/vm.sh kernel fetches it)
#   deploy/initramfs.cpio.gz  the deploy ramdisk
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
METAL="${STRATA_METAL_DIR:-/var/lib/strata-host/metal}"
VM="${STRATA_VM_DIR:-/var/lib/strata-host/vm}"
PACKAGES=(openipmi ipmitool dnsmasq-base ipxe isolinux extlinux syslinux-common fdisk genisoimage
  busybox-static cpio kmod lz4 iproute2 qemu-utils)
# The ramdisk's programs beyond busybox: sfdisk adds the config drive's
# partition to MBR and GPT tables alike (busybox's fdisk knows MBR only).
BINARIES=(/sbin/sfdisk /sbin/wipefs)

. "$HERE/apt.sh"

log() { printf '\033[1m[metal]\033[0m %s\n' "$*" >&2; }

packages() { apt_ensure "${PACKAGES[@]}"; }

kernel() { STRATA_VM_DIR="$VM" bash "$HERE/vm.sh" kernel; }

# Each binary with the shared libraries ldd names (and the loader), at the same paths.
copy_with_libs() {
  local dest="$1" bin="$2"
  install -D -m 0755 "$bin" "$dest$bin"
  for lib in $(ldd "$bin" | awk '/=> \// { print $3 } /^\t\// { print $1 }'); do
    [ -e "$dest$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$dest$lib"
  done
}

# Rebuilt whenever its inputs change: their hash names the build.
ramdisk() {
  local want have work out="$METAL/deploy"
  want="$( (cat "$ROOT/guest/ramdisk-init" "$VM/kernel/version" "$VM/kernel/modules.id" /bin/busybox
    for b in "${BINARIES[@]}"; do cat "$b"; done) | sha256sum | cut -c1-16)"
  have="$(cat "$out/ramdisk.id" 2>/dev/null || true)"
  [ "$want" = "$have" ] && [ -s "$out/initramfs.cpio.gz" ] && [ -s "$out/vmlinuz" ] && return 0
  log "building the deploy ramdisk"
  work="$(mktemp -d)"
  mkdir -p "$work"/{bin,sbin,etc,proc,sys,dev,tmp,run,root}
  chmod 1777 "$work/tmp"
  cp /bin/busybox "$work/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$work/bin/$applet"
  done
  for b in "${BINARIES[@]}"; do copy_with_libs "$work" "$b"; done
  cp -a "$VM/kernel/modules/lib" "$work/"
  install -m 0755 "$ROOT/guest/ramdisk-init" "$work/init"
  mkdir -p "$out"
  (cd "$work" && find . | cpio -o -H newc --quiet | gzip -1) > "$out/initramfs.cpio.gz.new"
  cp "$VM/kernel/vmlinuz" "$out/vmlinuz.new"
  mv "$out/vmlinuz.new" "$out/vmlinuz"
  mv "$out/initramfs.cpio.gz.new" "$out/initramfs.cpio.gz"
  echo "$want" > "$out/ramdisk.id"
  rm -rf "$work"
}

case "${1:-all}" in
  packages) packages ;;
  ramdisk) kernel; ramdisk ;;
  all) packages; kernel; ramdisk ;;
  *) echo "usage: $0 [all|packages|ramdisk]" >&2; exit 2 ;;
esac
