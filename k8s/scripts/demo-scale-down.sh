#!/usr/bin/env bash
# Scale-down demo: a checking probe runs at a low rate the whole time; a load probe pushes the
# messages-per-second metric until the HPA scales up; the load stops and the HPA scales back down
# to minReplicas, one drained pod a minute. The checking probe's verdict must be zero loss.
# Needs the monitoring stack (deploy-minikube.sh without MONITORING=0).
#
#   k8s/scripts/demo-scale-down.sh   # LOAD_CLIENTS=200 LOAD_RATE=400 LOAD_SECONDS=240 SCALE_TIMEOUT=900
source "$(dirname "$0")/lib.sh"

need node
LOAD_CLIENTS="${LOAD_CLIENTS:-200}" LOAD_RATE="${LOAD_RATE:-400}" LOAD_SECONDS="${LOAD_SECONDS:-240}"
SCALE_TIMEOUT="${SCALE_TIMEOUT:-900}"
OUT="$(mktemp -d)"
url="$(ingress_url)"
min="$(kubectl -n "$NS" get hpa switchboard-backend -o jsonpath='{.spec.minReplicas}')"
build_probe

echo "== checking probe: 20 clients, 4 rooms, 10 msg/s for $((LOAD_SECONDS + SCALE_TIMEOUT))s"
start_probe check --url "$url" --clients 20 --rooms 4 --rate 10 \
  --duration "$((LOAD_SECONDS + SCALE_TIMEOUT))" --settle 15
CHECK_PID=$PROBE_PID
echo "== load probe: $LOAD_CLIENTS clients at $LOAD_RATE msg/s for ${LOAD_SECONDS}s"
start_probe load --url "$url" --clients "$LOAD_CLIENTS" --rooms 20 --rate "$LOAD_RATE" \
  --duration "$LOAD_SECONDS" --settle 5
LOAD_PID=$PROBE_PID

peak="$(replicas)"
while kill -0 "$LOAD_PID" 2>/dev/null; do
  now="$(replicas)"
  ((now > peak)) && peak=$now
  echo "$(date +%T) load: ready replicas $now; HPA wants $(kubectl -n "$NS" get hpa switchboard-backend -o jsonpath='{.status.desiredReplicas}')"
  sleep 10
done
wait "$LOAD_PID" || true
echo "== load stopped; peak $peak replicas (min $min). Waiting for the scale-down"
start=$SECONDS
while (($(replicas) > min)) && ((SECONDS - start < SCALE_TIMEOUT)); do
  echo "$(date +%T) ready replicas $(replicas)"
  sleep 10
done
echo "== replicas now $(replicas); stopping the checking probe at its deadline"
code=0
wait "$CHECK_PID" || code=$?
verdict check "$code"
if ((peak <= min)); then
  echo "the HPA never scaled up: raise LOAD_RATE, or check 'kubectl get --raw /apis/custom.metrics.k8s.io/v1beta1'" >&2
  exit 1
fi
exit "$code"
