#!/usr/bin/env bash
# A one-node Kubernetes 1.34 in a network namespace of its own, for tests and `npm run k8s:up`.
#
#   cluster.sh up      start containerd, etcd, the control plane, kubelet, kube-proxy, CoreDNS,
#                      metrics-server, kube-router (NetworkPolicy only), Prometheus and the
#                      custom metrics adapter; import the images
#   cluster.sh down    stop everything and remove what it made: processes, mounts, the network
#                      namespaces, cgroups, containerd and etcd state
#   cluster.sh status  exit 0 when the API server answers
#
# The programs come from tests/infra/kube/binaries.ts (passed in KUBE_BIN, ETCD_BIN, COREDNS_BIN,
# METRICS_SERVER_BIN, KUBE_ROUTER_BIN, PROMETHEUS_BIN, METRICS_ADAPTER_BIN; image tarballs in IMAGES). Everything listens inside the
# namespace `switchboard-k8s` (node address 10.200.0.1 on a veth; the default route leads
# nowhere, so no pod traffic can leave the machine). The host's iptables are never touched:
# kube-proxy and kube-router program the namespace's own tables.
# Facts behind the choices: shared/KUBERNETES-LOCAL.md (nsenter --net, not `ip netns exec`, which
# breaks runc; restrict_oom_score_adj and oomScoreAdj 0 without CAP_SYS_RESOURCE; cgroup v1).
set -euo pipefail

NETNS=switchboard-k8s
NODE=switchboard-node
NODE_IP=10.200.0.1
SERVICE_CIDR=10.96.0.0/16
POD_CIDR=10.244.0.0/24
STATE="${KUBE_STATE:-/var/lib/switchboard-k8s}"
RUN=/run/switchboard-k8s
PKI="$STATE/pki"
LOGS="$STATE/logs"
CTR_SOCK="$RUN/containerd.sock"
KUBECONFIG_ADMIN="$STATE/admin.kubeconfig"
NSENTER=(nsenter "--net=/run/netns/$NETNS" --)
WAIT_S="${KUBE_WAIT_S:-120}"

log() { echo "[cluster $(date +%T)] $*" >&2; }
die() {
  log "FAILED: $*"
  for f in "$LOGS"/*.log; do
    [[ -f "$f" ]] || continue
    echo "---- last lines of $f" >&2
    tail -n 25 "$f" >&2
  done
  exit 1
}

# wait_until <what> <seconds> <command...>: polls twice a second, bounded.
wait_until() {
  local what="$1" seconds="$2"
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "$what not ready within ${seconds}s"
    sleep 0.5
  done
}

kctl() { "${NSENTER[@]}" "$KUBE_BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }

# start <name> <program> <args...>: a daemon in the cluster's namespace, own session, pid file.
start() {
  local name="$1"
  shift
  "${NSENTER[@]}" sh -c 'echo $$ > "$0"; exec setsid "$@"' "$RUN/$name.pid" "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  disown
  local i
  for i in $(seq 1 50); do [[ -s "$RUN/$name.pid" ]] && break; sleep 0.1; done
}

alive() { [[ -s "$RUN/$1.pid" ]] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

# ---------------------------------------------------------------- certificates and configs
cert() { # cert <name> <subject> [<subjectAltName>] : signed by the cluster CA
  local name="$1" subj="$2" san="${3:-}"
  openssl genrsa -out "$PKI/$name.key" 2048 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  local ext="$PKI/$name.ext"
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=serverAuth,clientAuth"
    [[ -n "$san" ]] && echo "subjectAltName=$san"
  } >"$ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/${4:-ca}.crt" -CAkey "$PKI/${4:-ca}.key" -CAcreateserial \
    -days 30 -sha256 -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
}

kubeconfig() { # kubeconfig <file> <cert name>
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: local
    cluster:
      certificate-authority: $PKI/ca.crt
      server: https://$NODE_IP:6443
users:
  - name: $2
    user:
      client-certificate: $PKI/$2.crt
      client-key: $PKI/$2.key
contexts:
  - name: local
    context: { cluster: local, user: $2 }
current-context: local
EOF
}

make_pki() {
  mkdir -p "$PKI"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$PKI/ca.key" -out "$PKI/ca.crt" -days 30 \
    -subj "/CN=switchboard-local-ca" 2>/dev/null
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$PKI/front-proxy-ca.key" -out "$PKI/front-proxy-ca.crt" \
    -days 30 -subj "/CN=switchboard-front-proxy-ca" 2>/dev/null
  cert apiserver "/CN=kube-apiserver" \
    "IP:10.96.0.1,IP:$NODE_IP,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost"
  cert admin "/O=system:masters/CN=switchboard-admin"
  cert kube-controller-manager "/CN=system:kube-controller-manager"
  cert kube-scheduler "/CN=system:kube-scheduler"
  cert kube-proxy "/CN=system:kube-proxy"
  cert kubelet "/O=system:nodes/CN=system:node:$NODE" "IP:$NODE_IP,DNS:$NODE"
  cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
  cert front-proxy-client "/CN=front-proxy-client" "" front-proxy-ca
  cert etcd "/CN=etcd" "IP:127.0.0.1,DNS:localhost"
  openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  kubeconfig "$KUBECONFIG_ADMIN" admin
  for c in kube-controller-manager kube-scheduler kube-proxy kubelet; do kubeconfig "$STATE/$c.kubeconfig" "$c"; done
}

write_configs() {
  mkdir -p "$STATE/cni/net.d" "$STATE/containerd" "$STATE/kubelet"
  cat >"$STATE/containerd/config.toml" <<EOF
version = 2
root = "$STATE/containerd/root"
state = "$RUN/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$CTR_SOCK"
[ttrpc]
  address = "$RUN/containerd.ttrpc.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
  # No CAP_SYS_RESOURCE here: runc must not lower oom_score_adj below the parent's.
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "/usr/sbin/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni/net.d"
EOF
  cat >"$STATE/cni/net.d/10-switchboard.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "switchboard",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "isDefaultGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": { "type": "host-local", "ranges": [[{ "subnet": "$POD_CIDR" }]], "dataDir": "$STATE/cni/ipam" }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
EOF
  echo "nameserver $NODE_IP" >"$STATE/resolv.conf"
  cat >"$STATE/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: { enabled: false }
  webhook: { enabled: true }
  x509: { clientCAFile: $PKI/ca.crt }
authorization: { mode: Webhook }
containerRuntimeEndpoint: unix://$CTR_SOCK
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
oomScoreAdj: 0
clusterDNS: [$NODE_IP]
clusterDomain: cluster.local
resolvConf: $STATE/resolv.conf
tlsCertFile: $PKI/kubelet.crt
tlsPrivateKeyFile: $PKI/kubelet.key
serializeImagePulls: false
# A shared disk: evict only when it is really full.
evictionHard: { memory.available: 100Mi, nodefs.available: 2%, imagefs.available: 2%, nodefs.inodesFree: 2% }
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
maxPods: 60
# Pod status changes reach the API at once (the tests read them).
nodeStatusUpdateFrequency: 5s
EOF
  cat >"$STATE/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: { kubeconfig: $STATE/kube-proxy.kubeconfig }
mode: iptables
clusterCIDR: 10.244.0.0/16
hostnameOverride: $NODE
oomScoreAdj: 0
conntrack: { maxPerCore: 0 }
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
EOF
  cat >"$STATE/Corefile" <<EOF
.:53 {
  errors
  health 127.0.0.1:18080
  ready 127.0.0.1:18181
  kubernetes cluster.local in-addr.arpa ip6.arpa {
    kubeconfig $KUBECONFIG_ADMIN local
    pods insecure
    fallthrough in-addr.arpa ip6.arpa
  }
  cache 5
  loop
  loadbalance
}
EOF
}

# ---------------------------------------------------------------- network namespace
make_netns() {
  ip netns add "$NETNS"
  ip link add sbk8s-host type veth peer name sbk8s-node
  ip link set sbk8s-node netns "$NETNS"
  ip link set sbk8s-host up
  "${NSENTER[@]}" ip link set lo up
  "${NSENTER[@]}" ip addr add "$NODE_IP/24" dev sbk8s-node
  "${NSENTER[@]}" ip link set sbk8s-node up
  # kubelet and kube-proxy want a default route; this one leads to an address nobody has.
  "${NSENTER[@]}" ip route add default via 10.200.0.254
  "${NSENTER[@]}" sysctl -qw net.ipv4.ip_forward=1
  "${NSENTER[@]}" sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true
}

# ---------------------------------------------------------------- up
up() {
  for v in KUBE_BIN ETCD_BIN COREDNS_BIN METRICS_SERVER_BIN KUBE_ROUTER_BIN PROMETHEUS_BIN METRICS_ADAPTER_BIN; do
    [[ -n "${!v:-}" ]] || die "$v is not set (run through tests/infra/kube/cli.ts)"
  done
  if [[ -e "/run/netns/$NETNS" || -d "$STATE" ]]; then
    log "leftovers of an earlier cluster: taking them down first"
    down
  fi
  local t0=$SECONDS
  mkdir -p "$STATE" "$RUN" "$LOGS"
  make_netns
  make_pki
  write_configs

  log "containerd"
  start containerd /usr/bin/containerd --config "$STATE/containerd/config.toml"
  wait_until containerd 30 "${NSENTER[@]}" ctr --address "$CTR_SOCK" version
  for img in ${IMAGES:-}; do
    "${NSENTER[@]}" ctr --address "$CTR_SOCK" -n k8s.io images import "$img" >/dev/null ||
      die "ctr images import $img"
  done

  log "etcd"
  start etcd "$ETCD_BIN" --name local --data-dir "$STATE/etcd" \
    --listen-client-urls https://127.0.0.1:2379 --advertise-client-urls https://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster local=http://127.0.0.1:2380 \
    --cert-file "$PKI/etcd.crt" --key-file "$PKI/etcd.key" --client-cert-auth --trusted-ca-file "$PKI/ca.crt" \
    --quota-backend-bytes 1073741824 --log-level warn

  log "kube-apiserver"
  start kube-apiserver "$KUBE_BIN/kube-apiserver" \
    --advertise-address "$NODE_IP" --bind-address 0.0.0.0 --secure-port 6443 \
    --etcd-servers https://127.0.0.1:2379 --etcd-cafile "$PKI/ca.crt" \
    --etcd-certfile "$PKI/apiserver.crt" --etcd-keyfile "$PKI/apiserver.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" --service-node-port-range 30000-32767 \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" \
    --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types InternalIP \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --requestheader-client-ca-file "$PKI/front-proxy-ca.crt" \
    --proxy-client-cert-file "$PKI/front-proxy-client.crt" --proxy-client-key-file "$PKI/front-proxy-client.key" \
    --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --enable-aggregator-routing=true --allow-privileged=true \
    --event-ttl 2h --profiling=false
  wait_until kube-apiserver "$WAIT_S" kctl get --raw /readyz

  log "controller-manager, scheduler"
  start kube-controller-manager "$KUBE_BIN/kube-controller-manager" \
    --kubeconfig "$STATE/kube-controller-manager.kubeconfig" \
    --authentication-kubeconfig "$STATE/kube-controller-manager.kubeconfig" \
    --authorization-kubeconfig "$STATE/kube-controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false --use-service-account-credentials=true \
    --controllers '*,bootstrapsigner,tokencleaner' \
    --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
    --root-ca-file "$PKI/ca.crt" --service-account-private-key-file "$PKI/sa.key" \
    --allocate-node-cidrs --cluster-cidr 10.244.0.0/16 --node-cidr-mask-size 24 \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --horizontal-pod-autoscaler-sync-period 10s \
    --node-monitor-grace-period 20s --profiling=false
  start kube-scheduler "$KUBE_BIN/kube-scheduler" --kubeconfig "$STATE/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig "$STATE/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig "$STATE/kube-scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false --profiling=false

  log "kubelet, kube-proxy"
  start kubelet "$KUBE_BIN/kubelet" --config "$STATE/kubelet/config.yaml" \
    --kubeconfig "$STATE/kubelet.kubeconfig" --hostname-override "$NODE" --node-ip "$NODE_IP" \
    --root-dir "$STATE/kubelet/root" --cert-dir "$STATE/kubelet/pki" --v 1
  start kube-proxy "$KUBE_BIN/kube-proxy" --config "$STATE/kube-proxy.yaml"
  wait_until "node $NODE Ready" "$WAIT_S" kctl wait --for=condition=Ready "node/$NODE" --timeout=2s

  log "CoreDNS, metrics-server, kube-router"
  start coredns "$COREDNS_BIN" -conf "$STATE/Corefile"
  apply_addons
  start metrics-server "$METRICS_SERVER_BIN" --kubeconfig "$KUBECONFIG_ADMIN" \
    --authentication-kubeconfig "$KUBECONFIG_ADMIN" --authorization-kubeconfig "$KUBECONFIG_ADMIN" \
    --secure-port 4443 --bind-address "$NODE_IP" --cert-dir "$STATE/metrics-server" \
    --kubelet-insecure-tls --kubelet-preferred-address-types InternalIP \
    --metric-resolution 15s
  start kube-router "$KUBE_ROUTER_BIN" --kubeconfig "$KUBECONFIG_ADMIN" --hostname-override "$NODE" \
    --run-firewall=true --run-router=false --run-service-proxy=false --enable-cni=false \
    --metrics-port 0 --health-port 20244
  start_monitoring
  wait_until CoreDNS 60 "${NSENTER[@]}" curl -fsS --max-time 2 http://127.0.0.1:18181/ready
  wait_until "default ServiceAccount" 60 kctl -n default get serviceaccount default
  for d in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy coredns metrics-server \
    kube-router prometheus metrics-adapter; do
    alive "$d" || die "$d exited"
  done
  write_wrappers
  log "up in $((SECONDS - t0)) s; kubectl: $STATE/kubectl"
}

# $STATE/kubectl: kubectl for this cluster from the host; $STATE/in-cluster-net <cmd>: a command
# in the cluster's network with the cluster's DNS (a private mount namespace gets its own
# /etc/resolv.conf), as a pod would see it: for the probe and curl.
write_wrappers() {
  cat >"$STATE/kubectl" <<EOF
#!/bin/sh
exec nsenter --net=/run/netns/$NETNS -- "$KUBE_BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "\$@"
EOF
  printf 'nameserver %s\nsearch switchboard.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n' \
    "$NODE_IP" >"$STATE/resolv.pod.conf"
  cat >"$STATE/in-cluster-net" <<EOF
#!/bin/sh
exec nsenter --net=/run/netns/$NETNS -- unshare --mount --propagation private -- \\
  sh -c 'mount --bind "\$0" /etc/resolv.conf && exec "\$@"' "$STATE/resolv.pod.conf" "\$@"
EOF
  chmod 0755 "$STATE/kubectl" "$STATE/in-cluster-net"
}

# Prometheus with the project's scrape job (k8s/monitoring/prometheus-scrape-config.yaml, given
# the kubeconfig it needs outside a pod), and the custom metrics adapter serving the HPA's
# messages-per-second metric from it on custom.metrics.k8s.io.
start_monitoring() {
  local root
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
  {
    echo "global: { scrape_interval: 5s, evaluation_interval: 5s }"
    echo "scrape_configs:"
    sed -E "s|^( *)- role: pod$|\1- role: pod\n\1  kubeconfig_file: $KUBECONFIG_ADMIN|" \
      "$root/k8s/monitoring/prometheus-scrape-config.yaml"
  } >"$STATE/prometheus.yml"
  start prometheus "$PROMETHEUS_BIN" --config.file "$STATE/prometheus.yml" \
    --storage.tsdb.path "$STATE/prometheus" --storage.tsdb.retention.time 6h \
    --web.listen-address "$NODE_IP:9090" --log.level warn
  start metrics-adapter "$METRICS_ADAPTER_BIN" --prometheus-url "http://$NODE_IP:9090" \
    --lister-kubeconfig "$KUBECONFIG_ADMIN" --authentication-kubeconfig "$KUBECONFIG_ADMIN" \
    --authorization-kubeconfig "$KUBECONFIG_ADMIN" \
    --secure-port 4444 --bind-address "$NODE_IP" --cert-dir "$STATE/metrics-adapter"
  kctl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Service
metadata: { name: custom-metrics, namespace: kube-system }
spec:
  ports: [{ name: https, port: 443, targetPort: 4444 }]
---
apiVersion: v1
kind: Endpoints
metadata: { name: custom-metrics, namespace: kube-system }
subsets:
  - addresses: [{ ip: $NODE_IP }]
    ports: [{ name: https, port: 4444 }]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: { name: v1beta2.custom.metrics.k8s.io }
spec:
  service: { name: custom-metrics, namespace: kube-system, port: 443 }
  group: custom.metrics.k8s.io
  version: v1beta2
  insecureSkipTLSVerify: true
  groupPriorityMinimum: 100
  versionPriority: 200
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: { name: v1beta1.custom.metrics.k8s.io }
spec:
  service: { name: custom-metrics, namespace: kube-system, port: 443 }
  group: custom.metrics.k8s.io
  version: v1beta1
  insecureSkipTLSVerify: true
  groupPriorityMinimum: 100
  versionPriority: 100
EOF
}

# The API objects that point at the node's own daemons: the kube-dns Service (for clients
# that ask for it by name), metrics-server's APIService, and a default StorageClass (hostPath
# volumes made by hand are bound by the tests' own PVs; local-path volumes by kubelet).
apply_addons() {
  kctl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Service
metadata: { name: metrics-server, namespace: kube-system }
spec:
  ports: [{ name: https, port: 443, targetPort: 4443 }]
---
apiVersion: v1
kind: Endpoints
metadata: { name: metrics-server, namespace: kube-system }
subsets:
  - addresses: [{ ip: $NODE_IP }]
    ports: [{ name: https, port: 4443 }]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: { name: v1beta1.metrics.k8s.io }
spec:
  service: { name: metrics-server, namespace: kube-system, port: 443 }
  group: metrics.k8s.io
  version: v1beta1
  insecureSkipTLSVerify: true
  groupPriorityMinimum: 100
  versionPriority: 100
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: local-hostpath
  annotations: { storageclass.kubernetes.io/is-default-class: "true" }
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
EOF
  # A pool of node-local volumes for the default StorageClass (no dynamic provisioner here).
  local i
  for i in 0 1 2 3 4 5; do
    mkdir -p "$STATE/volumes/pv$i"
    chmod 0777 "$STATE/volumes/pv$i"
    kctl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: PersistentVolume
metadata: { name: local-pv$i }
spec:
  capacity: { storage: 10Gi }
  accessModes: [ReadWriteOnce, ReadWriteMany]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: local-hostpath
  hostPath: { path: $STATE/volumes/pv$i, type: Directory }
  nodeAffinity:
    required:
      nodeSelectorTerms: [{ matchExpressions: [{ key: kubernetes.io/hostname, operator: In, values: [$NODE] }] }]
EOF
  done
}

# ---------------------------------------------------------------- down
pids_of_cluster() {
  # Container processes: every pid in the kubelet's pod cgroups; shims: those serving our socket.
  local d
  for d in /sys/fs/cgroup/*/kubepods; do
    [[ -d "$d" ]] && find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null
  done
  grep -l -a -- "$RUN/containerd" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3 || true
}

stop_daemon() {
  local name="$1" pid
  [[ -s "$RUN/$name.pid" ]] || return 0
  pid="$(cat "$RUN/$name.pid")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    local i
    for i in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$RUN/$name.pid"
}

down() {
  local d
  # The node agent first, so nothing restarts containers while they are stopped.
  for d in metrics-adapter prometheus kube-router metrics-server coredns kubelet kube-proxy kube-scheduler kube-controller-manager; do
    stop_daemon "$d"
  done
  local pid round
  for round in 1 2 3; do
    for pid in $(pids_of_cluster | sort -u); do
      [[ "$pid" == "$$" ]] || kill -KILL "$pid" 2>/dev/null || true
    done
    sleep 0.3
  done
  for d in containerd kube-apiserver etcd; do stop_daemon "$d"; done
  # Mounts of containerd and the kubelet (overlay snapshots, shm, volumes, sandbox netns).
  for round in 1 2 3; do
    { awk '{print $2}' /proc/mounts | grep -E "^($STATE|$RUN)(/|$)" || true; } | sort -r | while read -r m; do
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
  done
  # Pod network namespaces made by the CNI plugins of our containerd (no other runtime here).
  for d in /run/netns/cni-*; do
    [[ -e "$d" ]] || continue
    umount "$d" 2>/dev/null || umount -l "$d" 2>/dev/null || true
    rm -f "$d"
  done
  # The kubelet's cgroups, deepest first.
  for d in /sys/fs/cgroup/*/kubepods; do
    [[ -d "$d" ]] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  ip link del sbk8s-host 2>/dev/null || true
  if [[ -e "/run/netns/$NETNS" ]]; then ip netns del "$NETNS" 2>/dev/null || true; fi
  rm -rf "$STATE" "$RUN"
  log "down"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) kctl get --raw /readyz >/dev/null ;;
  *)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
