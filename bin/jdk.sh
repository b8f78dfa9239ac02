# Sourced by the launchers in bin/: finds a JDK >= 25 and exports JAVA_HOME and JAVA.
# Order: JAVA_HOME when it qualifies, else the newest qualifying JDK under /usr/lib/jvm.
# The system `java` (17 on these machines) is never used.

vhostffm_java_feature() { # prints the feature release of the JDK at $1, or nothing
  local home=$1 line
  [ -x "$home/bin/java" ] && [ -x "$home/bin/javac" ] || return 0
  line=$("$home/bin/java" -XshowSettings:properties -version 2>&1 | grep -m1 'java.specification.version') || return 0
  line=${line##*= }
  echo "${line%%.*}"
}

vhostffm_find_jdk() {
  local min=25 candidate feature best="" best_feature=0
  if [ -n "${JAVA_HOME:-}" ]; then
    feature=$(vhostffm_java_feature "$JAVA_HOME")
    if [ -n "$feature" ] && [ "$feature" -ge "$min" ]; then
      echo "$JAVA_HOME"; return 0
    fi
  fi
  for candidate in /usr/lib/jvm/*; do
    [ -d "$candidate" ] && [ ! -L "$candidate" ] || continue
    feature=$(vhostffm_java_feature "$candidate")
    if [ -n "$feature" ] && [ "$feature" -ge "$min" ] && [ "$feature" -gt "$best_feature" ]; then
      best=$candidate; best_feature=$feature
    fi
  done
  [ -n "$best" ] || { echo "vhost-ffm: no JDK >= $min found (JAVA_HOME='${JAVA_HOME:-}', /usr/lib/jvm). Install Temurin 25." >&2; return 1; }
  echo "$best"
}

JAVA_HOME=$(vhostffm_find_jdk) || exit 1
export JAVA_HOME
export JAVA="$JAVA_HOME/bin/java"
VHOSTFFM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export VHOSTFFM_ROOT

# Maven with the JDK found above; batch mode, quiet download logs.
vhostffm_mvn() {
  # Maven 3.8 itself calls sun.misc.Unsafe; allow it so JDK 25 does not warn about Maven.
  MAVEN_OPTS="${MAVEN_OPTS:-} --sun-misc-unsafe-memory-access=allow" mvn -B -ntp -f "$VHOSTFFM_ROOT/pom.xml" "$@"
}

# The main jar of a module, not its -tests, -sources or -javadoc jar; empty when not built.
vhostffm_module_jar() {
  ls "$VHOSTFFM_ROOT/$1"/target/"$1"-*.jar 2>/dev/null | grep -v -e '-tests.jar' -e '-sources.jar' -e '-javadoc.jar' | head -1 || true
}

# Builds the jars (no tests) when any source is newer than its module's jar.
vhostffm_build_if_stale() {
  local stale=0 module jar
  for module in vring vhost-ffm testkit migration programs; do
    jar=$(vhostffm_module_jar "$module")
    if [ -z "$jar" ] || [ -n "$(find "$VHOSTFFM_ROOT/$module/src/main" "$VHOSTFFM_ROOT/$module/pom.xml" "$VHOSTFFM_ROOT/pom.xml" -newer "$jar" -type f 2>/dev/null | head -1)" ]; then
      stale=1
    fi
  done
  if [ "$stale" = 1 ]; then
    echo "vhost-ffm: building (mvn package, no tests)..." >&2
    vhostffm_mvn -q package -DskipTests -pl vring,vhost-ffm,testkit,migration,programs >&2 || return 1
  fi
}

# The module path of the library modules and their runtime dependencies.
vhostffm_module_path() {
  local path="" module jar
  for module in vring vhost-ffm testkit migration programs; do
    jar=$(vhostffm_module_jar "$module")
    [ -n "$jar" ] && path="$path${path:+:}$jar"
  done
  for jar in "$VHOSTFFM_ROOT"/programs/target/lib/*.jar; do
    [ -e "$jar" ] || continue
    case "$(basename "$jar")" in vring-*|vhost-ffm-*|testkit-*|migration-*|programs-*) continue;; esac
    path="$path:$jar"
  done
  echo "$path"
}
