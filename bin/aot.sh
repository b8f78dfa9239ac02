# Sourced by bin/demo and bin/downtime-bench (after bin/jdk.sh): the JDK's ahead-of-time cache
# (JEP 483/514/515) for the migration destination's child JVM: classes loaded and linked, method
# profiles, from a training run. vhostffm_aot_cache FILE MAIN-CLASS ARGS... trains (when FILE is
# missing or older than a module jar) by running MAIN-CLASS ARGS with the child writing the cache
# (-XX:AOTCacheOutput, at the child's exit), then prints the child's flag -XX:AOTCache=FILE.
# A cache made for another class path or JDK is refused by the JVM with a warning and ignored.
vhostffm_aot_cache() {
  local cache=$1 main=$2; shift 2
  local stale=0 jar
  if [ ! -s "$cache" ]; then
    stale=1
  else
    for jar in $(vhostffm_module_path | tr ':' ' '); do
      [ "$jar" -nt "$cache" ] && stale=1
    done
  fi
  if [ "$stale" = 1 ]; then
    mkdir -p "$(dirname "$cache")"
    rm -f "$cache"
    echo "vhost-ffm: training the destination's AOT cache ($cache)..." >&2
    "$JAVA" -Dvhostffm.child.jvmflags="-XX:AOTCacheOutput=$cache" \
      --enable-native-access=io.vhostffm.vhost,io.vhostffm.testkit,io.vhostffm.programs -p "$(vhostffm_module_path)" \
      -m "io.vhostffm.programs/$main" "$@" > "$cache.training.log" 2>&1 \
      || { echo "vhost-ffm: AOT training failed, see $cache.training.log" >&2; return 1; }
    [ -s "$cache" ] || { echo "vhost-ffm: the training run wrote no AOT cache" >&2; return 1; }
  fi
  echo "-XX:AOTCache=$cache"
}
