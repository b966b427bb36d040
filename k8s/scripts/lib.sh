# Shared by the k8s scripts: repository root, namespace, the Ingress URL and the probe.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
NS="${NS:-switchboard}"
SELECTOR="app.kubernetes.io/name=switchboard-backend"

need() {
  command -v "$1" >/dev/null 2>&1 || { echo "$(basename "$0"): needs $1 on PATH" >&2; exit 2; }
}

# The Ingress as the probe reaches it (URL= overrides, e.g. http://127.0.0.1 with `minikube tunnel`).
ingress_url() {
  if [[ -n "${URL:-}" ]]; then echo "$URL"; else echo "http://$(minikube ip)"; fi
}

build_probe() {
  (cd "$ROOT" && npx tsc -b messages-lib)
}

# Starts switchboard-probe in the background: start_probe <name> <args...>; sets PROBE_PID and
# writes <name>.json (verdict) and <name>.log (stderr) under $OUT.
start_probe() {
  local name="$1"
  shift
  node "$ROOT/messages-lib/dist/probe/cli.js" "$@" >"$OUT/$name.json" 2>"$OUT/$name.log" &
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
  kubectl -n "$NS" get deployment switchboard-backend -o jsonpath='{.status.readyReplicas}'
}

verdict() {
  local name="$1" code="$2"
  echo "== probe verdict ($name): exit $code"
  cat "$OUT/$name.json"
}
