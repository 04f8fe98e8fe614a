#!/usr/bin/env bash
# Compiles the pure-Java core (Java 8 language level) and runs its JUnit 5 tests with Debian's
# console launcher: no Gradle, no Maven, no downloads.  Needs javac and junit5 (apt install
# default-jdk-headless junit5; the project's setup.sh installs them).
#   BUILD_DIR   where classes and the JUnit XML report go (default: core/build)
#   JUNIT_JAR   the console launcher (default: Debian's /usr/share/java/junit-platform-console-standalone.jar)
# Extra arguments go to the JVM before -jar, e.g. -Dtflite_int8.bundle=DIR to test against a bundle.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
BUILD="${BUILD_DIR:-$HERE/build}"
JUNIT="${JUNIT_JAR:-/usr/share/java/junit-platform-console-standalone.jar}"
command -v javac >/dev/null || { echo "run_tests.sh: javac not found (apt install default-jdk-headless)" >&2; exit 2; }
[ -f "$JUNIT" ] || { echo "run_tests.sh: $JUNIT not found (apt install junit5)" >&2; exit 2; }
rm -rf "$BUILD/main" "$BUILD/test" "$BUILD/reports"
mkdir -p "$BUILD/main" "$BUILD/test" "$BUILD/reports"
cd "$HERE"
javac -nowarn --release 8 -Xlint:-options -encoding UTF-8 -d "$BUILD/main" $(find src/main/java -name '*.java')
javac -nowarn --release 8 -Xlint:-options -encoding UTF-8 -cp "$BUILD/main:$JUNIT" -d "$BUILD/test" \
    $(find src/test/java -name '*.java')
exec java "$@" -jar "$JUNIT" --disable-banner --details=tree --class-path "$BUILD/main:$BUILD/test" \
    --select-package org.tflite_int8.harness --reports-dir "$BUILD/reports" --fail-if-no-tests
