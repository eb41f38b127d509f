#!/bin/sh
# Build the emulated board's Debian 12 root file system (cached by test/board/board_test.py).
#
#   build-rootfs.sh DEBARCH OUTDIR
#
# OUTDIR/rootfs/ gets the root tree, OUTDIR/vmlinuz and OUTDIR/initrd.img the kernel and a small
# initramfs. Everything comes from the Debian mirror (and PySquashfsImage from PyPI). tcr itself
# is NOT in here: it is installed per run with `make install DESTDIR=...`, as a board builder does.
# Anything that changes this file changes the cache key (board_test.py hashes it).
set -eu
DEBARCH=$1
OUT=$2
MIRROR=${TCR_BOARD_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm

case "$DEBARCH" in
arm64) KPKG=linux-image-arm64; QEMU_USER=aarch64 ;;
armhf) KPKG=linux-image-armmp-lpae; QEMU_USER=arm ;;
amd64) KPKG=linux-image-amd64; QEMU_USER= ;;
*) echo "unknown Debian architecture $DEBARCH" >&2; exit 2 ;;
esac

# Foreign binaries run through qemu-user-static and binfmt_misc. Where PID 1 is not systemd
# nothing mounts binfmt_misc or registers qemu: do it by hand (F: the kernel opens the
# interpreter now, so it also works inside the chroot; P: keep argv[0]).
if [ -n "$QEMU_USER" ]; then
	[ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
	if [ ! -e "/proc/sys/fs/binfmt_misc/qemu-$QEMU_USER" ]; then
		f=/usr/share/binfmts/qemu-$QEMU_USER
		magic=$(sed -n 's/^magic //p' "$f"); mask=$(sed -n 's/^mask //p' "$f")
		interp=$(sed -n 's/^interpreter //p' "$f")
		printf ':qemu-%s:M:0:%s:%s:%s:FP\n' "$QEMU_USER" "$magic" "$mask" "$interp" \
			>/proc/sys/fs/binfmt_misc/register
	fi
fi

rm -rf "$OUT.tmp"
mkdir -p "$OUT.tmp"
ROOT=$OUT.tmp/rootfs

PKGS="python3,crun,nftables,iproute2,squashfs-tools,busybox-static,openssh-server,systemd-sysv,udev,kmod"
PKGS="$PKGS,procps,e2fsprogs,$KPKG,initramfs-tools,python3-pyroute2,python3-dnslib,python3-zstandard"

# Debian's default initramfs (MODULES=most) takes ~13 min under emulation and is built twice;
# one with only what mounts the root disk takes under a minute.
SETUP='mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/etc/initramfs-tools/hooks"
echo MODULES=list >"$1/etc/initramfs-tools/conf.d/tcr-board"
cat >"$1/etc/initramfs-tools/hooks/tcr-board" <<HOOK
#!/bin/sh
[ "\$1" = prereqs ] && exit 0
. /usr/share/initramfs-tools/hook-functions
for m in virtio_mmio virtio_pci virtio_blk ext4 crc32c_generic; do manual_add_modules \$m; done
HOOK
chmod 0755 "$1/etc/initramfs-tools/hooks/tcr-board"'

mmdebstrap --variant=minbase --arch="$DEBARCH" --include="$PKGS" \
	--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
	--dpkgopt='path-exclude=/usr/share/locale/*' \
	--setup-hook="$SETUP" \
	"$SUITE" "$ROOT" "$MIRROR"

# PySquashfsImage is not in Debian: PyPI, into the site directory tcr is installed to.
SITE=$ROOT/usr/local/lib/python3.11/dist-packages
mkdir -p "$SITE"
PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --no-deps --no-compile --disable-pip-version-check \
	--target "$SITE" 'PySquashfsImage==0.9.0'
rm -rf "$SITE/bin"

cp -L "$ROOT/vmlinuz" "$OUT.tmp/vmlinuz"
cp -L "$ROOT/initrd.img" "$OUT.tmp/initrd.img"
rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"
