# Sourced by bin/demo and bin/downtime-bench (after bin/jdk.sh): the JDK's ahead-of-time cache
# (JEP 483/514/515) for both processes of a migration: classes loaded and linked, method
# profiles, from one training run. vhostffm_aot_cache FILE MAIN-CLASS ARGS... trains (when FILE is
# missing or older than a module jar) by running MAIN-CLASS ARGS, the child JVM (the destination,
# then the source when the runs go back and forth) writing FILE and the parent JVM (the first
# source) writing FILE's -parent.aot twin, each at its exit; then prints the child's flag
# -XX:AOTCache=FILE. vhostffm_aot_parent_flag FILE prints the parent's.
# A cache made for another class path or JDK is refused by the JVM with a warning and ignored.
vhostffm_aot_cache() {
  local cache=$1 main=$2; shift 2
  local parent stale=0 jar
  parent=$(vhostffm_aot_parent_file "$cache")
  if [ ! -s "$cache" ] || [ ! -s "$parent" ]; then
    stale=1
  else
    for jar in $(vhostffm_module_path | tr ':' ' '); do
      [ "$jar" -nt "$cache" ] && stale=1
    done
  fi
  if [ "$stale" = 1 ]; then
    mkdir -p "$(dirname "$cache")"
    rm -f "$cache" "$parent"
    echo "vhost-ffm: training the AOT caches of both processes ($cache, $parent)..." >&2
    "$JAVA" -XX:AOTCacheOutput="$parent" -Dvhostffm.child.jvmflags="-XX:AOTCacheOutput=$cache" \
      --enable-native-access=io.vhostffm.vhost,io.vhostffm.testkit,io.vhostffm.programs -p "$(vhostffm_module_path)" \
      -m "io.vhostffm.programs/$main" "$@" > "$cache.training.log" 2>&1 \
      || { echo "vhost-ffm: AOT training failed, see $cache.training.log" >&2; return 1; }
    [ -s "$cache" ] && [ -s "$parent" ] || { echo "vhost-ffm: the training run wrote no AOT cache" >&2; return 1; }
  fi
  echo "-XX:AOTCache=$cache"
}

vhostffm_aot_parent_file() {
  echo "${1%.aot}-parent.aot"
}

# The parent JVM's flag for the cache vhostffm_aot_cache FILE trained (call that first).
vhostffm_aot_parent_flag() {
  echo "-XX:AOTCache=$(vhostffm_aot_parent_file "$1")"
}
