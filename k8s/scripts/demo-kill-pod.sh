#!/usr/bin/env bash
# Kill-pod demo: switchboard-probe chats through the Ingress while a random backend pod is
# deleted every KILL_INTERVAL seconds. Graceful by default (PreStop, drain); FORCE=1 deletes with
# --grace-period=0 --force (a crash: clients reconnect and replay). Exits with the probe's code.
#
#   k8s/scripts/demo-kill-pod.sh   # CLIENTS=40 ROOMS=8 RATE=20 DURATION=180 KILL_INTERVAL=30
source "$(dirname "$0")/lib.sh"

need node
CLIENTS="${CLIENTS:-40}" ROOMS="${ROOMS:-8}" RATE="${RATE:-20}" DURATION="${DURATION:-180}"
KILL_INTERVAL="${KILL_INTERVAL:-30}" SETTLE="${SETTLE:-15}"
OUT="$(mktemp -d)"
url="$(ingress_url)"
build_probe

echo "== probe: $CLIENTS clients, $ROOMS rooms, $RATE msg/s for ${DURATION}s against $url"
start_probe kill-pod --url "$url" --clients "$CLIENTS" --rooms "$ROOMS" --rate "$RATE" \
  --duration "$DURATION" --settle "$SETTLE"
echo "== probe running; deleting a backend pod every ${KILL_INTERVAL}s"
deleted=0
while kill -0 "$PROBE_PID" 2>/dev/null; do
  sleep "$KILL_INTERVAL"
  kill -0 "$PROBE_PID" 2>/dev/null || break
  # The oldest pod that is not already terminating (a deleted pod stays Running while it drains):
  # it is the one holding clients; a pod the autoscaler just added has none yet.
  pod="$(kubectl -n "$NS" get pods -l "$SELECTOR" --field-selector=status.phase=Running \
    --sort-by=.metadata.creationTimestamp \
    -o custom-columns=NAME:.metadata.name,DELETING:.metadata.deletionTimestamp --no-headers |
    awk '$2 == "<none>" { print "pod/" $1; exit }')"
  [[ -n "$pod" ]] || continue
  if [[ "${FORCE:-0}" == "1" ]]; then
    kubectl -n "$NS" delete "$pod" --grace-period=0 --force --wait=false 2>/dev/null
  else
    kubectl -n "$NS" delete "$pod" --wait=false
  fi
  deleted=$((deleted + 1))
  echo "$(date +%T) deleted $pod (ready replicas now: $(replicas))"
done
code=0
wait "$PROBE_PID" || code=$?
echo "== deleted $deleted pods"
verdict kill-pod "$code"
exit "$code"
