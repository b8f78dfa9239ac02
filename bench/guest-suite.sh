#!/bin/sh
# The kernel suite, run where /dev/vhost-net exists: inside the kernel-bench VM (chrooted into the
# host root by bench/init.sh) or directly on a host that has vhost-net. bin/kernel-bench prepared
# everything in RESULTS_DIR beforehand (no Maven here: it is too slow under emulation):
#   probe.args  java argument file running io.vhostffm.programs.probe.Probe (absent: not built yet)
#   suite.args  java argument file running the JUnit console launcher over the kernel-tagged tests
#   jmh.args    (JMH mode, bin/bench --in-vm) java argument file running JMH; when present it runs
#               instead of the probe and the suite, and its exit status is written to jmh-exit
# Writes probe-exit and suite-exit into RESULTS_DIR; exits non-zero when either failed.
# Java's stdin is /dev/null: on the VM's serial console (a terminal without a controlling tty)
# the launcher would otherwise run stty against /dev/tty, fail, and say so.
set -u
export HOME=/tmp LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
cd /tmp || exit 1

echo "== $(uname -sr): $(ls -l /dev/vhost-net 2>&1)"

if [ -r "$RESULTS_DIR/jmh.args" ]; then
    echo "== JMH (bin/bench --in-vm): $(grep -c . "$RESULTS_DIR/jmh.args") arguments in $RESULTS_DIR/jmh.args"
    "$JAVA" "@$RESULTS_DIR/jmh.args" < /dev/null
    jmh=$?
    echo "$jmh" > "$RESULTS_DIR/jmh-exit"
    exit "$jmh"
fi

probe=0
if [ -r "$RESULTS_DIR/probe.args" ]; then
    echo "== probe (io.vhostffm.programs.probe.Probe)"
    "$JAVA" "@$RESULTS_DIR/probe.args" < /dev/null
    probe=$?
    echo "$probe" > "$RESULTS_DIR/probe-exit"
    [ "$probe" = 0 ] || echo "== probe FAILED with exit status $probe"
else
    echo "== probe: io.vhostffm.programs.probe.Probe is not built in this tree; not run"
fi

echo "== kernel-tagged tests (JUnit console launcher)"
"$JAVA" "@$RESULTS_DIR/suite.args" < /dev/null
suite=$?
echo "$suite" > "$RESULTS_DIR/suite-exit"

[ "$suite" = 0 ] || exit "$suite"
[ "$probe" = 0 ] || exit 100
exit 0
