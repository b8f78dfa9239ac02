#!/bin/busybox sh
# PID 1 of the peer suite's guest (bin/peer-bench copies this file to /init of its initramfs).
# A real Linux guest whose own virtio-net driver runs over vhost-user against our backend: it
# loads the virtio-net modules, configures eth0, pings the host side of the TAP, prints what the
# host test checks (its negotiated feature bits, ping's summary, its interface counters), each on
# a line starting "peer-guest:", and powers off. Parameters come on the kernel command line:
#   peer.ip=ADDR/PREFIX  peer.host=ADDR  peer.count=N
#   peer.mtu=N (optional: eth0's MTU)  peer.size=N (optional: ping's payload bytes, -s)

/bin/busybox mkdir -p /proc /sys /dev /sbin /usr/bin /usr/sbin /tmp
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

say() { echo "peer-guest: $*"; }
finish() { say "done $1"; poweroff -f; sleep 60; }

arg() { tr ' ' '\n' < /proc/cmdline | sed -n "s/^$1=//p" | tail -1; }
IP=$(arg peer.ip); HOST=$(arg peer.host); COUNT=$(arg peer.count); MTU=$(arg peer.mtu); SIZE=$(arg peer.size)
[ -n "$IP" ] && [ -n "$HOST" ] && [ -n "$COUNT" ] || { say "missing peer.ip, peer.host or peer.count"; finish 2; }

while read -r module; do
    insmod "/modules/$module.ko" || { say "insmod $module failed"; finish 3; }
done < /modules/load-order

for dev in /sys/bus/virtio/devices/*; do
    [ "$(cat "$dev/device")" = 0x0001 ] || continue   # virtio-net
    say "features $(cat "$dev/features")"
done
ip link set lo up
ip link set eth0 up || { say "no eth0"; finish 4; }
ip addr add "$IP" dev eth0
if [ -n "$MTU" ]; then
    ip link set eth0 mtu "$MTU" || { say "ip link set eth0 mtu $MTU failed"; finish 5; }
fi
say "mtu $(cat /sys/class/net/eth0/mtu)"
# The queues the driver brought up (one rx-N and tx-N per queue pair in use).
say "queues $(ls /sys/class/net/eth0/queues | tr '\n' ' ')"
# ping waits up to 1 s per reply; TCG and the first ARP round make the first one slow.
say "pinging $HOST"
ping -c "$COUNT" -i 0.2 -W 5 ${SIZE:+-s "$SIZE"} "$HOST" > /tmp/ping.txt 2>&1
status=$?
sed 's/^/peer-guest: ping: /' /tmp/ping.txt
say "counters $(grep 'eth0:' /proc/net/dev | tr -s ' ')"
finish "$status"
