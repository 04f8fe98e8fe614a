#!/usr/bin/env bash
# Creates .venv/ at the repo root and installs the tested set of packages.
# Safe to run again: it does nothing when the lock files have not changed.
set -euo pipefail
cd "$(dirname "$0")"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
if ! "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "setup.sh: Python 3.11 is required (found $("$PY" --version 2>&1))" >&2
    exit 2
fi
# The Android harness's Java core is tested with javac and Debian's JUnit 5 console launcher.
if { ! command -v javac >/dev/null 2>&1 || [ ! -f /usr/share/java/junit-platform-console-standalone.jar ]; }; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        echo "setup.sh: installing default-jdk-headless and junit5 (apt) for the Java core's tests" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jdk-headless junit5 >/dev/null
    else
        echo "setup.sh: the Java core's tests need javac and junit5: sudo apt-get install default-jdk-headless junit5" >&2
    fi
fi
# Speech for the Silero VAD test and the audio benchmarks (tflite_int8/zoo/speech.py): Debian's espeak-ng.
if ! command -v espeak-ng >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        echo "setup.sh: installing espeak-ng (apt) for the speech tests" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng >/dev/null
    else
        echo "setup.sh: the speech tests need espeak-ng: sudo apt-get install espeak-ng" >&2
    fi
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
STAMP=.venv/.tflite-int8-setup
WANT="$(cat requirements.lock requirements-nodeps.lock pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
    exit 0
fi
echo "setup.sh: installing the pinned packages into .venv/ (a few minutes the first time)" >&2
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
# torch first, pinned: anything that lets pip choose torch itself pulls a multi-GB CUDA build.
"${PIP[@]}" torch==2.13.0
"${PIP[@]}" -r requirements.lock
"${PIP[@]}" --no-deps -r requirements-nodeps.lock
"${PIP[@]}" --no-deps --no-build-isolation -e .
# Fashion-MNIST for the accuracy benchmark (a Debian package; optional, best effort, never fatal).
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 \
        || echo "setup.sh: could not install dataset-fashion-mnist (only the benchmarks need it)" >&2
fi
echo "$WANT" > "$STAMP"
