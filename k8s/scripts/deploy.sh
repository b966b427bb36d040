#!/usr/bin/env bash
# Deploys Switchboard: secrets generated in the cluster, the target's overlay applied, and every
# workload waited for. One script for both targets (see lib.sh):
#
#   k8s/scripts/deploy.sh                  # TARGET=minikube: starts minikube if needed, builds the
#                                          # image inside it; MONITORING=0 skips the Helm charts
#   TARGET=local k8s/scripts/deploy.sh     # the local cluster of `npm run k8s:up` (images already
#                                          # imported by it, monitoring run by the cluster itself)
source "$(dirname "$0")/lib.sh"
need openssl

if [[ "$TARGET" == "minikube" ]]; then
  need minikube
  minikube status >/dev/null 2>&1 || minikube start --cpus=4 --memory=8g
  minikube addons enable ingress
  minikube addons enable metrics-server
  echo "== building the image inside minikube (switchboard:dev)"
  minikube image build -t switchboard:dev "$ROOT"
fi

kubectl apply -f "$ROOT/k8s/overlays/$TARGET/namespace.yaml"
if ! kubectl -n "$NS" get secret switchboard-secrets >/dev/null 2>&1; then
  echo "== generating switchboard-secrets (random; never written to the repository)"
  kubectl -n "$NS" create secret generic switchboard-secrets \
    --from-literal=mongo-root-password="$(openssl rand -hex 24)" \
    --from-literal=mongo-app-password="$(openssl rand -hex 24)" \
    --from-literal=mongo-keyfile="$(openssl rand -base64 756 | tr -d '\n')"
fi

if [[ "$TARGET" == "minikube" && "${MONITORING:-1}" == "1" ]]; then
  need helm
  echo "== Prometheus, prometheus-adapter and Grafana (namespace monitoring)"
  helm repo add prometheus-community https://prometheus-community.github.io/helm-charts >/dev/null
  helm repo add grafana https://grafana.github.io/helm-charts >/dev/null
  helm repo update >/dev/null
  helm upgrade --install prometheus prometheus-community/prometheus -n monitoring --create-namespace \
    -f "$ROOT/k8s/monitoring/prometheus-values.yaml" \
    --set-file extraScrapeConfigs="$ROOT/k8s/monitoring/prometheus-scrape-config.yaml" --wait
  helm upgrade --install prometheus-adapter prometheus-community/prometheus-adapter -n monitoring \
    -f "$ROOT/k8s/monitoring/prometheus-adapter-values.yaml" --wait
  kubectl -n monitoring create configmap switchboard-dashboard \
    --from-file=switchboard.json="$ROOT/k8s/monitoring/grafana-dashboard.json" \
    --dry-run=client -o yaml | kubectl label --local -f - grafana_dashboard=1 -o yaml | kubectl apply -f -
  helm upgrade --install grafana grafana/grafana -n monitoring \
    --set sidecar.dashboards.enabled=true \
    --set 'datasources.datasources\.yaml.apiVersion=1' \
    --set 'datasources.datasources\.yaml.datasources[0].name=Prometheus' \
    --set 'datasources.datasources\.yaml.datasources[0].type=prometheus' \
    --set 'datasources.datasources\.yaml.datasources[0].url=http://prometheus-server.monitoring.svc' \
    --set 'datasources.datasources\.yaml.datasources[0].isDefault=true' --wait
fi

echo "== applying k8s/overlays/$TARGET"
kubectl apply -k "$ROOT/k8s/overlays/$TARGET"

TIMEOUT="${TIMEOUT:-300s}"
echo "== waiting for the data stores and the backend"
kubectl -n "$NS" rollout status statefulset/hazelcast --timeout="$TIMEOUT"
kubectl -n "$NS" rollout status statefulset/mongodb --timeout="$TIMEOUT"
if kubectl -n "$NS" get job mongodb-init >/dev/null 2>&1; then
  kubectl -n "$NS" wait --for=condition=complete job/mongodb-init --timeout="$TIMEOUT"
fi
kubectl -n "$NS" rollout status deployment/switchboard-backend --timeout="$TIMEOUT"

url="$(ingress_url)"
for _ in $(seq 1 60); do
  if in_net curl -fsS --max-time 2 "$url/ready" >/dev/null 2>&1; then break; fi
  sleep 2
done
in_net curl -fsS --max-time 5 "$url/ready" && echo
if [[ "$TARGET" == "local" ]]; then
  echo "== Switchboard is up: $url inside the cluster's network"
  echo "   kubectl:  $LOCAL_STATE/kubectl -n $NS get pods"
  echo "   a shell in the cluster's network (curl, the probe): $LOCAL_STATE/in-cluster-net bash"
else
  echo "== Switchboard is up: $url (web chat at $url/, metrics at :9090/metrics on each pod)"
fi
