#!/usr/bin/env bash
# Deploys Switchboard to minikube: image built inside minikube, secrets generated in the cluster,
# the minikube overlay applied, and every workload waited for. Optional monitoring (Prometheus,
# prometheus-adapter for the HPA's messages-per-second metric, Grafana) with Helm.
#
#   k8s/scripts/deploy-minikube.sh            # MONITORING=0 skips the Helm charts
source "$(dirname "$0")/lib.sh"
need minikube
need kubectl

minikube status >/dev/null 2>&1 || minikube start --cpus=4 --memory=8g
minikube addons enable ingress
minikube addons enable metrics-server

echo "== building the image inside minikube (switchboard:dev)"
minikube image build -t switchboard:dev "$ROOT"

kubectl get namespace "$NS" >/dev/null 2>&1 || kubectl create namespace "$NS"
if ! kubectl -n "$NS" get secret switchboard-secrets >/dev/null 2>&1; then
  echo "== generating switchboard-secrets (random; never written to the repository)"
  kubectl -n "$NS" create secret generic switchboard-secrets \
    --from-literal=mongo-root-password="$(openssl rand -hex 24)" \
    --from-literal=mongo-app-password="$(openssl rand -hex 24)" \
    --from-literal=mongo-keyfile="$(openssl rand -base64 756 | tr -d '\n')"
fi

if [[ "${MONITORING:-1}" == "1" ]]; then
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

echo "== applying k8s/overlays/minikube"
kubectl apply -k "$ROOT/k8s/overlays/minikube"

echo "== waiting for the data stores, the init job and the backend"
kubectl -n "$NS" rollout status statefulset/hazelcast --timeout=300s
kubectl -n "$NS" rollout status statefulset/mongodb --timeout=300s
kubectl -n "$NS" wait --for=condition=complete job/mongodb-init --timeout=300s
kubectl -n "$NS" rollout status deployment/switchboard-backend --timeout=300s

url="$(ingress_url)"
for _ in $(seq 1 60); do
  if curl -fsS "$url/ready" >/dev/null 2>&1; then break; fi
  sleep 2
done
curl -fsS "$url/ready" && echo
echo "== Switchboard is up: $url (web chat at $url/, metrics at :9090/metrics on each pod)"
