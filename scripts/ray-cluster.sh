#!/usr/bin/env bash
# A real two-node Ray cluster on this machine, for the cluster backend's tests.
#
#   bash scripts/ray-cluster.sh install
#       Makes the venv ${XDG_CACHE_HOME:-$HOME/.cache}/wmp/ray-2.60.0 with
#       ray[default]==2.60.0 (about 90 s and 350 MB the first time; silent and
#       quick once cached).
#   bash scripts/ray-cluster.sh run -- CMD [ARGS...]
#       Installs if needed, then, inside a network and pid namespace of its own
#       that has nothing but `lo`, starts a head node and a second node (custom
#       resource `node_b`), waits until the Jobs API answers and both nodes are
#       alive, runs CMD with
#         WMP_RAY_DASHBOARD=http://127.0.0.1:8265  (the Jobs REST API)
#         WMP_RAY_ADDRESS=127.0.0.1:6380           (the GCS, for ray.init)
#         WMP_RAY_PYTHON=<venv>/bin/python
#         WMP_RAY_NODE_B_PID=<pid>                 (node b's `ray start`: SIGKILL
#                                                   it and its descendants to
#                                                   remove node b)
#       stops Ray and exits with CMD's status.
#
# The namespaces keep Ray's traffic on loopback, which --node-ip-address alone
# does not (Ray still probes 8.8.8.8:53 to learn its address, and some of its
# processes have been seen listening beyond loopback), and make every Ray
# process end when this script ends, even if it is killed. Ray's temp files and logs go to a
# fresh directory under /tmp, removed when CMD succeeds and kept (its path is
# printed) when the cluster does not come up or CMD fails. Needs root (unshare).
set -euo pipefail

RAY_VERSION=2.60.0
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/wmp/ray-$RAY_VERSION"
MARKER="$VENV/.wmp-installed"
SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
GCS_PORT=6380
DASHBOARD_PORT=8265
NODE_B_AGENT_PORT=52366 # the head's agent has the default, 52365
START_TIMEOUT_S=120

say() { echo "ray-cluster: $*" >&2; }

usage() {
  echo "usage: bash scripts/ray-cluster.sh install" >&2
  echo "       bash scripts/ray-cluster.sh run -- CMD [ARGS...]" >&2
  exit 2
}

# True when the venv is complete: the marker is written last, and the
# interpreter and the ray command must still be there and run.
installed() {
  [[ -f $MARKER && $(<"$MARKER") == "ray[default]==$RAY_VERSION" && -x $VENV/bin/ray ]] &&
    "$VENV/bin/python" -c '' 2>/dev/null
}

install() {
  installed && return 0
  mkdir -p "$(dirname "$VENV")"
  # One installer at a time; a second caller waits, then finds it done.
  exec 9>"$VENV.lock"
  flock 9
  if ! installed; then
    say "installing ray[default]==$RAY_VERSION into $VENV (about 90 s the first time)"
    local t0=$EPOCHREALTIME
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "ray[default]==$RAY_VERSION"
    echo "ray[default]==$RAY_VERSION" >"$MARKER"
    say "installed in $(elapsed "$t0") s"
  fi
  exec 9>&-
}

# Seconds since $1 (an $EPOCHREALTIME), to a tenth.
elapsed() {
  awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'
}

# Inside the namespaces (pid 1 of the new pid namespace).
TMP=""
PIDS=()
KEEP_TMP=1 # until CMD has succeeded

# SIGTERM the recorded `ray start --block` processes (each stops the Ray
# processes it started), SIGKILL whichever is left after 10 s. Anything else
# ends with this script: it is pid 1 of the namespace.
stop_ray() {
  ((${#PIDS[@]})) || return 0
  kill -TERM "${PIDS[@]}" 2>/dev/null || true
  local i pid alive
  for ((i = 0; i < 100; i++)); do
    alive=0
    for pid in "${PIDS[@]}"; do
      ! kill -0 "$pid" 2>/dev/null || alive=1
    done
    ((alive)) || break
    sleep 0.1
  done
  kill -KILL "${PIDS[@]}" 2>/dev/null || true
  wait "${PIDS[@]}" 2>/dev/null || true
  PIDS=()
}

# The last lines of the logs that tell why a cluster did not come up.
show_logs() {
  local f
  for f in "$TMP"/head.log "$TMP"/node_b.log \
    "$TMP"/session_latest/logs/{gcs_server.out,gcs_server.err,dashboard.log,dashboard.err} \
    "$TMP"/session_latest/logs/raylet*.out "$TMP"/session_latest/logs/raylet*.err \
    "$TMP"/session_latest/logs/dashboard_agent*.log "$TMP"/session_latest/logs/runtime_env_agent*.log; do
    [[ -s $f ]] || continue
    echo "----- ${f#"$TMP"/} (last 20 lines)" >&2
    tail -n 20 "$f" >&2
  done
}

# On exit, however it comes: Ray stops, and its files go unless kept.
finish() {
  stop_ray
  if ((KEEP_TMP)); then
    say "Ray's files are kept in $TMP"
  else
    rm -rf "$TMP"
  fi
}

# Succeeds once the GCS port accepts (probe gcs) or once the Jobs API answers
# and Ray's state API lists two alive nodes (probe nodes).
probe() {
  "$VENV/bin/python" - "$1" $GCS_PORT $DASHBOARD_PORT <<'EOF'
import json, socket, sys, urllib.request
what, gcs, dashboard = sys.argv[1], int(sys.argv[2]), f"http://127.0.0.1:{sys.argv[3]}"
if what == "gcs":
    socket.create_connection(("127.0.0.1", gcs), timeout=1).close()
    sys.exit(0)
try:
    urllib.request.urlopen(f"{dashboard}/api/version", timeout=2).read()
    with urllib.request.urlopen(f"{dashboard}/api/v0/nodes", timeout=5) as r:
        nodes = json.load(r)["data"]["result"]["result"]
except Exception:
    sys.exit(1)
alive = [n for n in nodes if n.get("state") == "ALIVE"]
sys.exit(0 if len(alive) == 2 else 1)
EOF
}

# Waits until `probe $1` succeeds, while every recorded process lives.
wait_for() {
  local deadline=$((SECONDS + START_TIMEOUT_S))
  until probe "$1" 2>/dev/null; do
    kill -0 "${PIDS[@]}" 2>/dev/null || { say "a ray start process exited early"; return 1; }
    ((SECONDS < deadline)) || { say "not up after ${START_TIMEOUT_S} s (waiting for $1)"; return 1; }
    sleep 0.5
  done
}

inside() {
  ip link set lo up
  TMP=$(mktemp -d /tmp/wmp-ray.XXXXXX) # short: Ray's socket paths must fit 107 bytes
  trap finish EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  local t0=$EPOCHREALTIME
  local ray=(env RAY_USAGE_STATS_ENABLED=0 "$VENV/bin/ray" start --block
    --node-ip-address=127.0.0.1 --num-cpus=1 --temp-dir="$TMP" --disable-usage-stats)
  "${ray[@]}" --head --port=$GCS_PORT \
    --dashboard-host=127.0.0.1 --dashboard-port=$DASHBOARD_PORT >"$TMP/head.log" 2>&1 &
  PIDS+=($!)
  if wait_for gcs; then
    # Its own agent port: on the head's (52365) its agent would serve no HTTP,
    # and the logs of the jobs it runs could not be fetched.
    "${ray[@]}" --address=127.0.0.1:$GCS_PORT --resources='{"node_b": 1}' \
      --dashboard-agent-listen-port=$NODE_B_AGENT_PORT >"$TMP/node_b.log" 2>&1 &
    PIDS+=($!)
  fi
  if ((${#PIDS[@]} < 2)) || ! wait_for nodes; then
    show_logs
    exit 1
  fi
  say "2 Ray nodes up in $(elapsed "$t0") s (temp dir $TMP)"

  local status=0
  WMP_RAY_DASHBOARD=http://127.0.0.1:$DASHBOARD_PORT \
    WMP_RAY_ADDRESS=127.0.0.1:$GCS_PORT \
    WMP_RAY_PYTHON="$VENV/bin/python" \
    WMP_RAY_NODE_B_PID="${PIDS[1]}" \
    "$@" || status=$?
  ((status != 0)) || KEEP_TMP=0
  exit "$status"
}

case "${1-}" in
  install)
    (($# == 1)) || usage
    install
    ;;
  run)
    shift
    [[ ${1-} == -- ]] && shift
    (($#)) || usage
    install
    # --kill-child: should unshare be killed, the namespace dies with it.
    exec unshare --net --pid --fork --mount-proc --kill-child bash "$SELF" __inside "$@"
    ;;
  __inside)
    shift
    inside "$@"
    ;;
  *) usage ;;
esac
