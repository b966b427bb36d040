# Shared by the k8s scripts: repository root, namespace, the target cluster, the URL clients use
# and the probe.
#
# TARGET=minikube (default, what users run): kubectl and minikube on PATH; clients reach the
#   Ingress at http://$(minikube ip) (URL= overrides, e.g. http://127.0.0.1 with `minikube tunnel`).
# TARGET=local (what CI runs, `npm run k8s:up`): the one-node cluster of tests/infra/kube; kubectl
#   is its wrapper, and clients (the probe, curl) run inside the cluster's network namespace with
#   the cluster's DNS and reach the `switchboard` Service: there is no Ingress controller.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
NS="${NS:-switchboard}"
SELECTOR="app.kubernetes.io/name=switchboard-backend"
TARGET="${TARGET:-minikube}"
LOCAL_STATE="${LOCAL_STATE:-/var/lib/switchboard-k8s}"

need() {
  command -v "$1" >/dev/null 2>&1 || { echo "$(basename "$0"): needs $1 on PATH" >&2; exit 2; }
}

case "$TARGET" in
  minikube)
    need kubectl
    in_net() { "$@"; }
    ;;
  local)
    [[ -x "$LOCAL_STATE/kubectl" ]] || {
      echo "$(basename "$0"): the local cluster is not up (npm run k8s:up)" >&2
      exit 2
    }
    kubectl() { "$LOCAL_STATE/kubectl" "$@"; }
    in_net() { "$LOCAL_STATE/in-cluster-net" "$@"; }
    ;;
  *)
    echo "$(basename "$0"): TARGET must be minikube or local, not $TARGET" >&2
    exit 2
    ;;
esac

# The URL clients use: the Ingress on minikube, the Service inside the local cluster's network.
ingress_url() {
  if [[ -n "${URL:-}" ]]; then
    echo "$URL"
  elif [[ "$TARGET" == "local" ]]; then
    echo "http://switchboard.$NS.svc.cluster.local:8080"
  else
    echo "http://$(minikube ip)"
  fi
}

build_probe() {
  (cd "$ROOT" && npx tsc -b messages-lib)
}

# Starts switchboard-probe in the background: start_probe <name> <args...>; sets PROBE_PID and
# writes <name>.json (verdict) and <name>.log (stderr) under $OUT.
start_probe() {
  local name="$1"
  shift
  in_net node "$ROOT/messages-lib/dist/probe/cli.js" "$@" >"$OUT/$name.json" 2>"$OUT/$name.log" &
  PROBE_PID=$!
  local waited=0
  until grep -q 'probe: running' "$OUT/$name.log" 2>/dev/null; do
    if ! kill -0 "$PROBE_PID" 2>/dev/null; then
      echo "probe $name exited before it was running:" >&2
      cat "$OUT/$name.log" >&2
      exit 1
    fi
    if ((waited >= 120)); then
      echo "probe $name did not get all clients joined within 120 s" >&2
      kill "$PROBE_PID" 2>/dev/null || true
      exit 1
    fi
    sleep 1
    waited=$((waited + 1))
  done
}

replicas() {
  # readyReplicas is absent, not 0, while no pod is ready
  local n
  n="$(kubectl -n "$NS" get deployment switchboard-backend -o jsonpath='{.status.readyReplicas}')"
  echo "${n:-0}"
}

verdict() {
  local name="$1" code="$2"
  echo "== probe verdict ($name): exit $code"
  cat "$OUT/$name.json"
}
