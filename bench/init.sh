#!/bin/busybox sh
# PID 1 of the kernel-bench VM (bin/kernel-bench copies this file to /init of the initramfs).
# Loads the virtio, 9p, tun and vhost-net modules, mounts the host's root read-only over 9p and
# the writable results share at the same absolute path as on the host, chroots into the host
# root, runs the suite script named in guest.env, writes its exit status to the results share as
# "exit-code" and powers off. When anything before the suite fails it powers off without writing
# an exit code, which the host reports as a failed run.

/bin/busybox mkdir -p /proc /sys /dev /sbin /usr/bin /usr/sbin /newroot /results
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

say() { echo "kernel-bench init [$(cut -d' ' -f1 /proc/uptime)s]: $*"; }
fail() {
    say "FAILED: $*"
    say "no exit code written; powering off"
    poweroff -f
    sleep 60 # poweroff -f returns before the VM stops
}

say "kernel $(uname -r), loading modules"
while read -r module; do
    insmod "/modules/$module.ko" || fail "insmod $module"
done < /modules/load-order

# Both shares speak 9P2000.L over virtio; a large msize makes class loading through 9p faster.
NINEP_OPTS=trans=virtio,version=9p2000.L,msize=262144
mount -t 9p -o "$NINEP_OPTS" results /results || fail "mounting the results share"
[ -r /results/guest.env ] || fail "the results share has no guest.env"
# RESULTS_DIR (the share's path on the host), GUEST_SCRIPT, BENCH_SHELL, written by the host.
set -a
. /results/guest.env
set +a
uname -r > /results/kernel-release

# cache=loose: the guest's page cache keeps what it read of the host root (the JDK, the jars),
# instead of one 9p round trip per read(); under TCG that halves the JVM's start. Safe because the
# share is read-only and the files the suite reads do not change while it runs.
mount -t 9p -o "$NINEP_OPTS,ro,cache=loose" hostroot /newroot || fail "mounting the host root"
# The host root is read-only: give the chroot fresh kernel filesystems and writable scratch space.
mount -t devtmpfs devtmpfs /newroot/dev || fail "mounting /dev"
mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts devpts /newroot/dev/pts
mount -t tmpfs tmpfs /newroot/dev/shm
mount -t proc proc /newroot/proc || fail "mounting /proc"
mount -t sysfs sysfs /newroot/sys || fail "mounting /sys"
# The scratch filesystems below hide what the host has under /tmp and /run, where a checkout may
# live: each of KEEP_PATHS there (the tree, the JDK, the caches; from guest.env) is bound aside
# first and bound back at the same path over the fresh tmpfs, so every host path stays valid.
kept=0
set_aside=
for path in $KEEP_PATHS; do
    case $path/ in
        /tmp/*|/run/*)
            [ -d "/newroot$path" ] || continue
            kept=$((kept + 1))
            mkdir -p "/kept/$kept"
            mount -o bind "/newroot$path" "/kept/$kept" || fail "setting $path aside"
            set_aside="$set_aside $kept:$path"
            ;;
    esac
done
mount -t tmpfs tmpfs /newroot/tmp || fail "mounting /tmp"
mount -t tmpfs tmpfs /newroot/run
for entry in $set_aside; do
    path=${entry#*:}
    mkdir -p "/newroot$path"
    mount -o bind "/kept/${entry%%:*}" "/newroot$path" || fail "binding $path back"
done
mount -o bind /results "/newroot$RESULTS_DIR" || fail "binding the results share at $RESULTS_DIR"
ip link set lo up

say "running $GUEST_SCRIPT"
chroot /newroot /bin/sh "$GUEST_SCRIPT"
code=$?
say "suite exited with $code"
echo "$code" > /results/exit-code

if [ "$BENCH_SHELL" = 1 ]; then
    say "VHOSTFFM_BENCH_SHELL=1: a shell in the VM (host root at /); exit it to power off"
    setsid cttyhack chroot /newroot /bin/bash -l
fi

sync
umount "/newroot$RESULTS_DIR" /results 2>/dev/null
poweroff -f
sleep 60
