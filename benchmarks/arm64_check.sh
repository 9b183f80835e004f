#!/usr/bin/env bash
# The runtime on ARM64 (Raspberry Pi 5 class), under emulation, on an x86-64 Debian/Ubuntu machine, as root.
#
#   sudo ARM64_CACHE=/work/arm64-cache benchmarks/arm64_check.sh [all|chroot|install|tests|daemon]
#
# chroot   a Debian bookworm arm64 root (debootstrap, cached in $ARM64_CACHE/rootfs) run by qemu-user 10
#          (bookworm-backports' qemu-user, fetched with a private apt source list and unpacked with
#          dpkg-deb -x: the system's apt sources stay as they are; bookworm's qemu 7.2 segfaults when
#          onnxruntime >= 1.28 is imported), registered in binfmt_misc with the F flag (the kernel opens
#          the static interpreter once, so it need not exist inside the chroot).
# install  the runtime wheel built from this checkout, installed in a venv in the chroot with aarch64 wheels
#          only (no torch: the base install pulls none), plus pytest.
# tests    the test files that need no torch (the ones collection fails on for want of torch are listed);
#          ARM64_TESTS="tests/test_a.py tests/test_b.py" runs only those (emulation is 40-230x slower).
# daemon   every shipped bundle (edge_vad/assets/bundles/*) through the daemon on the demo clip's frames,
#          decoded once here into PNGs (the aarch64 OpenCV wheel decodes MJPEG up to 2 grey levels
#          differently), events to a mosquitto running on this host; then the same on x86 and the scores
#          compared (benchmarks/arm64_scores.py).
# ARM64_BUNDLES=bisho,stmae limits the daemon runs to those models.
# Results land in $ARM64_CACHE/results/ (logs, scores-*.json, compare.txt).  The chroot build takes ~15 min.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${ARM64_CACHE:-$REPO/.cache/arm64}
ROOT=$CACHE/rootfs
QEMU=$CACHE/qemu/usr/bin/qemu-aarch64
RESULTS=$CACHE/results
MIRROR=${ARM64_MIRROR:-http://deb.debian.org/debian}
HOST_PY=${HOST_PY:-$REPO/.venv/bin/python}
VENV=${ARM64_VENV:-/opt/venv}  # inside the chroot; another one lets tests run beside a daemon run
STAGE=${1:-all}
mkdir -p "$CACHE" "$RESULTS"

log() { printf '[arm64 %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

[ "$(id -u)" -eq 0 ] || { echo "run as root (debootstrap, chroot, binfmt_misc)" >&2; exit 2; }

# ----------------------------------------------------------------- qemu 10 + binfmt_misc
fetch_qemu() {
  [ -x "$QEMU" ] && return
  local apt=$CACHE/apt
  mkdir -p "$apt/lists/partial" "$apt/archives/partial" "$CACHE/qemu"
  echo "deb $MIRROR bookworm-backports main" > "$apt/sources.list"
  local opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
              -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache::Archives=$apt/archives")
  log "fetching qemu-user from bookworm-backports (private source list)"
  apt-get -qq "${opts[@]}" update
  (cd "$apt" && apt-get -qq "${opts[@]}" download qemu-user 2>/dev/null)
  dpkg-deb -x "$apt"/qemu-user_*.deb "$CACHE/qemu"
  "$QEMU" --version | head -1
}

register_binfmt() {
  [ -d /proc/sys/fs/binfmt_misc ] || { echo "no binfmt_misc in this kernel" >&2; exit 2; }
  [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  local entry=/proc/sys/fs/binfmt_misc/qemu-aarch64
  if [ -e "$entry" ] && ! grep -qx "interpreter $QEMU" "$entry"; then
    log "replacing the qemu-aarch64 binfmt entry ($(sed -n 's/^interpreter //p' "$entry"))"
    echo -1 > "$entry"
  fi
  if [ ! -e "$entry" ]; then
    # Magic and mask from qemu's own binfmt.d file; flags O(pen) P(reserve argv0) F(ix binary at registration).
    local conf magic mask
    conf=$(cat "$CACHE/qemu/usr/share/qemu/binfmt.d/qemu-aarch64.conf")
    magic=$(echo "$conf" | cut -d: -f5)
    mask=$(echo "$conf" | cut -d: -f6)
    printf ':qemu-aarch64:M::%s:%s:%s:OPF' "$magic" "$mask" "$QEMU" > /proc/sys/fs/binfmt_misc/register
  fi
}

# ----------------------------------------------------------------- the chroot
mounted=()
mount_chroot() {
  for d in proc dev sys; do
    mountpoint -q "$ROOT/$d" && continue
    case $d in
      proc) mount -t proc proc "$ROOT/proc" ;;
      *) mount --rbind "/$d" "$ROOT/$d"; mount --make-rslave "$ROOT/$d" ;;
    esac
    mounted+=("$ROOT/$d")
  done
}
unmount_chroot() {
  local i
  for ((i=${#mounted[@]}-1; i>=0; i--)); do umount -R "${mounted[$i]}" 2>/dev/null || umount -l "${mounted[$i]}"; done
  mounted=()
}
trap unmount_chroot EXIT

# Commands in the chroot see none of this host's environment (pip's index settings, proxies, venvs).
in_chroot() {
  chroot "$ROOT" /usr/bin/env -i HOME=/root PATH=$VENV/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 "$@"
}

build_chroot() {
  command -v debootstrap >/dev/null || { log "installing debootstrap"; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap; }
  fetch_qemu
  register_binfmt
  [ -f "$ROOT/.complete" ] && return
  rm -rf "$ROOT"
  log "debootstrap bookworm arm64 (first stage)"
  debootstrap --arch=arm64 --foreign --variant=minbase \
    --include=python3,python3-venv,python3-pip,ca-certificates,mosquitto,openssl bookworm "$ROOT" "$MIRROR"
  log "debootstrap second stage (emulated; ~11 min)"
  chroot "$ROOT" /debootstrap/debootstrap --second-stage
  touch "$ROOT/.complete"
  log "chroot ready: $(du -sh "$ROOT" | cut -f1)"
}

# ----------------------------------------------------------------- the runtime wheel
install_runtime() {
  mount_chroot
  # pip checks certificates against the host's bundle (this machine may add its own CA).
  cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
  rm -rf "$CACHE/wheel" && mkdir -p "$CACHE/wheel"
  log "building the edge-vad wheel from $REPO"
  "$HOST_PY" -m pip wheel -q --no-deps --no-build-isolation -w "$CACHE/wheel" "$REPO"
  rm -rf "$ROOT/opt/wheel" && cp -r "$CACHE/wheel" "$ROOT/opt/wheel"
  [ -x "$ROOT$VENV/bin/python" ] || in_chroot python3 -m venv "$VENV"
  log "installing it in the chroot (aarch64 wheels only)"
  in_chroot python -m pip install -q --upgrade --only-binary=:all: pip
  # Dependencies once; edge-vad itself every time (same version number, new code).
  in_chroot sh -c 'python -m pip install -q --only-binary=:all: /opt/wheel/edge_vad-*.whl pytest pytest-timeout &&
                   python -m pip install -q --force-reinstall --no-deps /opt/wheel/edge_vad-*.whl'
  if in_chroot python -c "import torch" 2>/dev/null; then echo "torch got installed: the base install must not pull it" >&2; exit 1; fi
  in_chroot python -c "import platform, numpy, cv2, onnxruntime, edge_vad.runtime.stream as s; print(platform.machine(), platform.python_version(), 'numpy', numpy.__version__, 'opencv', cv2.__version__, 'onnxruntime', onnxruntime.__version__)" \
    | tee "$RESULTS/versions.txt"
}

# ----------------------------------------------------------------- torch-free tests
run_tests() {
  mount_chroot
  # The tests run against the installed wheel: of the package, only the shipped assets the tests read by
  # path (a folder without __init__.py: the installed edge_vad still wins the import).
  rm -rf "$ROOT/opt/src" && mkdir -p "$ROOT/opt/src"
  (cd "$REPO" && tar cf - tests pyproject.toml edge_vad/assets) | tar xf - -C "$ROOT/opt/src"
  log "collecting the tests without torch"
  local selected=${ARM64_TESTS:-tests}
  in_chroot sh -c "cd /opt/src && python -m pytest -q --co -p no:cacheprovider $selected" > "$RESULTS/collect.log" 2>&1 || true
  local uncollected=() keep=() f
  while read -r f; do uncollected+=("$f"); done < <(sed -n 's/^ERROR \(tests\/[^ ]*\.py\).*/\1/p' "$RESULTS/collect.log" | sort -u)
  : > "$RESULTS/tests.log"
  for f in "${uncollected[@]}"; do  # each with its reason: a module-level import of torch, or a bug to look at
    printf 'not collected: %s (%s)\n' "$f" "$(grep -A40 "ERROR collecting $f" "$RESULTS/collect.log" | grep -m1 '^E ' | cut -c5-)"
  done | tee -a "$RESULTS/tests.log"
  # --ignore covers files found under a folder; a file named outright is dropped from the list instead.
  for f in $selected; do [[ " ${uncollected[*]} " == *" $f "* ]] || keep+=("$f"); done
  log "running the torch-free tests (emulated; slow)"
  local rc=0
  in_chroot sh -c "cd /opt/src && python -m pytest -q -rs -p no:cacheprovider -o addopts= ${uncollected[*]/#/--ignore=} ${keep[*]}" \
    >> "$RESULTS/tests.log" 2>&1 || rc=$?
  tail -5 "$RESULTS/tests.log"
  return $rc
}

# ----------------------------------------------------------------- daemon runs, scores vs x86
run_daemon() {
  mount_chroot
  local frames=$CACHE/frames
  if [ ! -f "$frames/.complete" ]; then
    log "decoding the demo clip into PNG frames (x86 OpenCV)"
    rm -rf "$frames" && "$HOST_PY" "$REPO/benchmarks/arm64_scores.py" frames "$frames" && touch "$frames/.complete"
  fi
  rm -rf "$ROOT/opt/frames" "$ROOT/opt/arm64_scores.py"
  cp -r "$frames" "$ROOT/opt/frames"
  cp "$REPO/benchmarks/arm64_scores.py" "$ROOT/opt/arm64_scores.py"
  local port conf
  port=$("$HOST_PY" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
  conf=$CACHE/mosquitto.conf
  printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$port" > "$conf"
  /usr/sbin/mosquitto -c "$conf" > "$RESULTS/mosquitto.log" 2>&1 &
  MOSQUITTO_PID=$!
  trap 'kill $MOSQUITTO_PID 2>/dev/null || true; unmount_chroot' EXIT
  log "host mosquitto on 127.0.0.1:$port; x86 run"
  "$HOST_PY" "$REPO/benchmarks/arm64_scores.py" run "$frames" "mqtt://127.0.0.1:$port" "$RESULTS/scores-x86_64.json"
  log "arm64 run (emulated)"
  in_chroot python /opt/arm64_scores.py run /opt/frames "mqtt://127.0.0.1:$port" /opt/scores-aarch64.json ${ARM64_BUNDLES:+--bundles "$ARM64_BUNDLES"}
  cp "$ROOT/opt/scores-aarch64.json" "$RESULTS/scores-aarch64.json"
  kill $MOSQUITTO_PID; wait $MOSQUITTO_PID 2>/dev/null || true
  "$HOST_PY" "$REPO/benchmarks/arm64_scores.py" compare "$RESULTS/scores-x86_64.json" "$RESULTS/scores-aarch64.json" \
    | tee "$RESULTS/compare.txt"
}

case $STAGE in
  chroot) build_chroot ;;
  install) build_chroot; install_runtime ;;
  tests) build_chroot; run_tests ;;
  daemon) build_chroot; run_daemon ;;
  all) build_chroot; install_runtime; run_daemon; run_tests ;;
  *) echo "usage: $0 [all|chroot|install|tests|daemon]" >&2; exit 2 ;;
esac
