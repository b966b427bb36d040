import { expect } from 'chai';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { ensureKubeTools, KUBERNETES_VERSION } from '../infra/kube-tools.js';
import { startProcess } from '../infra/proc.js';

const k8s = fileURLToPath(new URL('../../k8s', import.meta.url));

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;

async function run(
  cmd: string,
  args: string[],
  timeoutMs = 120_000,
): Promise<{ code: number | null; out: string }> {
  const proc = startProcess(`k8s-${cmd.split('/').pop()}`, cmd, args, { cwd: k8s });
  let timer: NodeJS.Timeout | undefined;
  const exit = await Promise.race([
    proc.exited,
    new Promise<'timeout'>((r) => {
      timer = setTimeout(() => r('timeout'), timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  if (exit === 'timeout') {
    await proc.stop(2_000);
    throw new Error(`${cmd} ${args.join(' ')} timed out`);
  }
  return { code: exit.code, out: proc.output() };
}

function find(objs: Obj[], kind: string, name: string): Obj {
  const o = objs.find((x) => x.kind === kind && x.metadata?.name === name);
  if (!o) throw new Error(`no ${kind} ${name} in the rendered manifests`);
  return o;
}

/**
 * Every manifest, checked offline: kustomize renders the base and the minikube overlay, kubeconform
 * validates them against the Kubernetes schemas (strict: unknown fields fail), kube-score lints
 * them, and the invariants a graceful drain and the autoscaler depend on are asserted.
 */
describe('Kubernetes manifests (offline)', function () {
  this.timeout(15 * 60_000);
  let tools: Awaited<ReturnType<typeof ensureKubeTools>>;
  let work: string;
  const rendered: Record<string, { text: string; objs: Obj[] }> = {};

  before(async function () {
    this.timeout(15 * 60_000);
    tools = await ensureKubeTools();
    work = mkdtempSync(join(tmpdir(), 'sb-k8s-'));
    for (const target of ['base', 'overlays/minikube', 'canary']) {
      const r = await run(tools.kustomize, ['build', target]);
      expect(r.code, `kustomize build ${target}:\n${r.out}`).to.equal(0);
      const objs = parseAllDocuments(r.out)
        .map((d) => d.toJSON() as Obj)
        .filter(Boolean);
      rendered[target] = { text: r.out, objs };
      writeFileSync(join(work, `${target.replace('/', '-')}.yaml`), r.out);
    }
  });

  after(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  const schemaArgs = (): string[] => [
    '-strict',
    '-summary',
    '-kubernetes-version',
    KUBERNETES_VERSION,
    '-schema-location',
    `${tools.schemas}/{{ .ResourceKind }}{{ .KindSuffix }}.json`,
  ];

  it('renders both targets with every kind the deployment needs', () => {
    for (const target of ['base', 'overlays/minikube']) {
      const kinds = new Set(rendered[target]!.objs.map((o) => o.kind));
      for (const kind of [
        'Deployment',
        'Service',
        'Ingress',
        'HorizontalPodAutoscaler',
        'PodDisruptionBudget',
        'StatefulSet',
        'Job',
        'PersistentVolumeClaim',
        'NetworkPolicy',
        'ConfigMap',
        'ServiceAccount',
      ]) {
        expect(kinds.has(kind), `${target}: ${kind}`).to.equal(true);
      }
    }
  });

  it('validates against the Kubernetes schemas (kubeconform, strict)', async () => {
    const files = readdirSync(work).map((f) => join(work, f));
    const r = await run(tools.kubeconform, [...schemaArgs(), ...files]);
    expect(r.code, r.out).to.equal(0);
    expect(r.out).to.match(/Invalid: 0, Errors: 0, Skipped: 0/);
  });

  it('kubeconform rejects a manifest with a misspelled field (the validation is real)', async () => {
    const broken = rendered['base']!.text.replace(
      'terminationGracePeriodSeconds:',
      'terminationGracePeriodSecond:',
    );
    const file = join(work, 'broken', 'broken.yaml');
    await import('node:fs/promises').then((fs) => fs.mkdir(join(work, 'broken'), { recursive: true }));
    writeFileSync(file, broken);
    const r = await run(tools.kubeconform, [...schemaArgs(), file]);
    expect(r.code).to.not.equal(0);
    expect(r.out).to.contain('terminationGracePeriodSecond');
    await rm(join(work, 'broken'), { recursive: true, force: true });
  });

  it('passes kube-score with no critical finding', async () => {
    for (const file of readdirSync(work)) {
      // Ignored: imagePullPolicy Always cannot work with an image built inside minikube.
      const r = await run(tools.kubeScore, [
        'score',
        join(work, file),
        '--output-format',
        'ci',
        '--ignore-test',
        'container-image-pull-policy',
      ]);
      const critical = r.out.split('\n').filter((l) => l.startsWith('[CRITICAL]'));
      expect(critical, `${file}:\n${critical.join('\n')}`).to.deep.equal([]);
      expect(r.out, 'kube-score ran').to.match(/\[OK\]/);
    }
  });

  for (const target of ['base', 'overlays/minikube']) {
    describe(`invariants (${target})`, () => {
      const objs = (): Obj[] => rendered[target]!.objs;
      const backend = (): Obj => find(objs(), 'Deployment', 'switchboard-backend');
      const container = (): Obj => backend().spec.template.spec.containers[0];
      const env = (): Map<string, Obj> => new Map(container().env.map((e: Obj) => [e.name, e]));
      const envMs = (name: string): number => Number(env().get(name)?.value);

      it('has a PreStop hook on /prestop (admin port) and a grace period that covers PreStop plus the drain deadline', () => {
        const preStop = container().lifecycle?.preStop?.httpGet;
        expect(preStop, 'preStop httpGet').to.deep.include({ path: '/prestop', port: 'admin' });
        const grace = backend().spec.template.spec.terminationGracePeriodSeconds;
        const prestop = envMs('PRESTOP_WAIT_MS');
        const deadline = envMs('SHUTDOWN_TIMEOUT_MS');
        expect(prestop).to.be.greaterThan(0);
        expect(deadline).to.be.greaterThan(envMs('DRAIN_WINDOW_MS'));
        expect(grace * 1000).to.be.at.least(prestop + deadline);
      });

      it('serves /prestop and /metrics on an admin port that no Service or Ingress exposes', () => {
        const c = container();
        const admin = c.ports.find((p: Obj) => p.name === 'admin');
        expect(admin, 'container port named admin').to.not.equal(undefined);
        expect(admin.containerPort).to.equal(Number(env().get('ADMIN_PORT')!.value));
        expect(admin.containerPort).to.not.equal(Number(env().get('PORT')!.value));
        const annotations = backend().spec.template.metadata.annotations;
        expect(Number(annotations['prometheus.io/port']), 'Prometheus scrapes the admin port').to.equal(
          admin.containerPort,
        );
        const adminRefs = new Set(['admin', admin.containerPort, String(admin.containerPort)]);
        for (const svc of objs().filter((o) => o.kind === 'Service')) {
          for (const p of svc.spec.ports ?? []) {
            expect(
              adminRefs.has(p.targetPort ?? p.port),
              `Service ${svc.metadata.name} port ${p.name}`,
            ).to.equal(false);
            expect(adminRefs.has(p.port), `Service ${svc.metadata.name} port ${p.name}`).to.equal(false);
          }
        }
        const services = new Map(
          objs()
            .filter((o) => o.kind === 'Service')
            .map((o) => [o.metadata.name, o]),
        );
        for (const ing of objs().filter((o) => o.kind === 'Ingress')) {
          const backends = (ing.spec.rules ?? []).flatMap((r: Obj) =>
            (r.http?.paths ?? []).map((p: Obj) => p.backend.service),
          );
          if (ing.spec.defaultBackend?.service) backends.push(ing.spec.defaultBackend.service);
          for (const be of backends) {
            expect(adminRefs.has(be.port?.name ?? be.port?.number), `Ingress ${ing.metadata.name}`).to.equal(
              false,
            );
            const svc = services.get(be.name);
            expect(svc, `Ingress ${ing.metadata.name} routes to Service ${be.name}`).to.not.equal(undefined);
          }
        }
        // The NetworkPolicy admits the admin port only from the monitoring namespace.
        const policy = find(objs(), 'NetworkPolicy', 'switchboard-backend');
        for (const rule of policy.spec.ingress as Obj[]) {
          const ports = (rule.ports ?? []).map((p: Obj) => p.port);
          if (!ports.some((p: unknown) => adminRefs.has(p as string))) continue;
          expect(rule.from, 'admin port rule has a from').to.be.an('array').that.is.not.empty;
          for (const peer of rule.from as Obj[]) {
            expect(peer.namespaceSelector?.matchLabels).to.deep.equal({
              'kubernetes.io/metadata.name': 'monitoring',
            });
          }
        }
        const open = (policy.spec.ingress as Obj[]).filter((r) => !r.from);
        for (const rule of open) {
          const ports = (rule.ports ?? []).map((p: Obj) => p.port);
          expect(
            ports.some((p: unknown) => adminRefs.has(p as string)),
            'admin port open to all',
          ).to.equal(false);
        }
      });

      it('probes readiness on /ready and liveness on /health, on the HTTP port', () => {
        const c = container();
        expect(c.readinessProbe.httpGet).to.deep.include({ path: '/ready', port: 'http' });
        expect(c.livenessProbe.httpGet).to.deep.include({ path: '/health', port: 'http' });
        const http = c.ports.find((p: Obj) => p.name === 'http');
        expect(http.containerPort).to.equal(Number(env().get('PORT')!.value));
        const grpc = c.ports.find((p: Obj) => p.name === 'grpc');
        expect(grpc.containerPort).to.equal(Number(env().get('GRPC_PORT')!.value));
        const bus = c.ports.find((p: Obj) => p.name === 'bus');
        expect(bus.containerPort).to.equal(Number(env().get('CLUSTER_PORT')!.value));
      });

      it('configures the cluster from the pod: fixed bus port, pod IP published, Hazelcast and MongoDB', () => {
        const e = env();
        const order = [...e.keys()];
        expect(e.get('CLUSTER_HOST')!.value).to.equal('0.0.0.0');
        expect(e.get('POD_IP')!.valueFrom.fieldRef.fieldPath).to.equal('status.podIP');
        expect(e.get('CLUSTER_PUBLIC_HOST')!.value).to.equal('$(POD_IP)');
        expect(order.indexOf('POD_IP')).to.be.lessThan(order.indexOf('CLUSTER_PUBLIC_HOST'));
        expect(e.get('CLUSTER_MODE')!.value).to.equal('hazelcast');
        expect(e.get('STORE')!.value).to.equal('mongodb');
        // Kubernetes expands $(VAR) only for variables defined earlier in the list (a patch can reorder it).
        const expanded = new Map<string, string>();
        for (const [name, entry] of e) {
          const value = String(entry.value ?? '');
          for (const [, ref] of value.matchAll(/\$\(([A-Z_]+)\)/g)) {
            expect(order.indexOf(ref!), `${name} uses $(${ref}) before it is defined`).to.be.within(
              0,
              order.indexOf(name) - 1,
            );
          }
          expanded.set(
            name,
            value.replace(/\$\(([A-Z_]+)\)/g, (_, ref: string) => expanded.get(ref) || `<${ref}>`),
          );
        }
        // Every MongoDB member named in MONGO_URL exists, and the init job initiates that many.
        const mongo = find(objs(), 'StatefulSet', 'mongodb');
        const hosts = /@([^/]+)\//.exec(expanded.get('MONGO_URL')!)![1]!.split(',');
        expect(hosts).to.deep.equal(
          Array.from({ length: mongo.spec.replicas }, (_, i) => `mongodb-${i}.mongodb:27017`),
        );
        const init = find(objs(), 'Job', 'mongodb-init').spec.template.spec.containers[0];
        expect(init.env.find((x: Obj) => x.name === 'MONGO_MEMBERS').value).to.equal(
          String(mongo.spec.replicas),
        );
        // FILES_DIR is on the ReadWriteMany claim.
        const mount = container().volumeMounts.find((m: Obj) => m.mountPath === e.get('FILES_DIR')!.value);
        const volume = backend().spec.template.spec.volumes.find((v: Obj) => v.name === mount.name);
        const claim = find(objs(), 'PersistentVolumeClaim', volume.persistentVolumeClaim.claimName);
        expect(claim.spec.accessModes).to.deep.equal(['ReadWriteMany']);
      });

      it('autoscales the Deployment on CPU and messages per second (autoscaling/v2), with a PDB', () => {
        const hpa = find(objs(), 'HorizontalPodAutoscaler', 'switchboard-backend');
        expect(hpa.apiVersion).to.equal('autoscaling/v2');
        expect(hpa.spec.scaleTargetRef).to.deep.equal({
          apiVersion: 'apps/v1',
          kind: 'Deployment',
          name: backend().metadata.name,
        });
        expect(hpa.spec.minReplicas).to.be.at.least(2);
        expect(backend().spec.replicas, 'the HPA owns the replica count').to.equal(undefined);
        const types = hpa.spec.metrics.map((m: Obj) => m.resource?.name ?? m.pods?.metric?.name);
        expect(types).to.deep.equal(['cpu', 'switchboard_chat_messages_in_per_second']);
        const adapter = readFileSync(join(k8s, 'monitoring', 'prometheus-adapter-values.yaml'), 'utf8');
        expect(adapter).to.contain('as: switchboard_chat_messages_in_per_second');
        expect(adapter).to.contain('switchboard_chat_messages_in_total');
        const pdb = find(objs(), 'PodDisruptionBudget', 'switchboard-backend');
        expect(pdb.spec.selector.matchLabels).to.deep.equal(backend().spec.selector.matchLabels);
      });

      it('serves WebSockets through the Ingress with long timeouts, and gRPC on a headless Service', () => {
        const ing = find(objs(), 'Ingress', 'switchboard');
        expect(
          Number(ing.metadata.annotations['nginx.ingress.kubernetes.io/proxy-read-timeout']),
        ).to.be.at.least(3600);
        expect(
          Number(ing.metadata.annotations['nginx.ingress.kubernetes.io/proxy-send-timeout']),
        ).to.be.at.least(3600);
        const svcName = ing.spec.rules[0].http.paths[0].backend.service.name;
        const svc = find(objs(), 'Service', svcName);
        expect(svc.spec.selector).to.deep.equal(backend().spec.selector.matchLabels);
        const grpc = find(objs(), 'Service', 'switchboard-grpc');
        expect(grpc.spec.clusterIP).to.equal('None');
        expect(grpc.spec.ports[0].targetPort).to.equal('grpc');
        expect(find(objs(), 'Service', 'hazelcast').spec.publishNotReadyAddresses).to.equal(true);
      });

      it('commits no credentials: no Secret objects, secrets only by reference', () => {
        expect(objs().filter((o) => o.kind === 'Secret')).to.deep.equal([]);
        const text = rendered[target]!.text;
        expect(text).to.not.match(/password:\s*\S+/i);
        for (const o of objs()) {
          const spec = o.spec?.template?.spec ?? o.spec?.jobTemplate?.spec?.template?.spec;
          for (const c of [...(spec?.containers ?? []), ...(spec?.initContainers ?? [])]) {
            for (const e of c.env ?? []) {
              if (/PASSWORD|SECRET|TOKEN/.test(e.name)) {
                expect(e.value, `${o.kind}/${o.metadata.name} ${e.name} is a literal`).to.equal(undefined);
                expect(e.valueFrom?.secretKeyRef?.name).to.equal('switchboard-secrets');
              }
            }
          }
        }
      });

      it('lets only the backend (and the members themselves) reach Hazelcast and MongoDB', () => {
        for (const [name, port] of [
          ['hazelcast', 5701],
          ['mongodb', 27017],
        ] as const) {
          const policy = find(objs(), 'NetworkPolicy', name);
          expect(policy.spec.podSelector.matchLabels).to.deep.equal({ 'app.kubernetes.io/name': name });
          expect(policy.spec.policyTypes).to.include('Ingress');
          const from = policy.spec.ingress.flatMap((r: Obj) =>
            r.from.map((f: Obj) => f.podSelector.matchLabels['app.kubernetes.io/name']),
          );
          expect(from).to.include('switchboard-backend');
          for (const who of from) expect(['switchboard-backend', name, 'mongodb-init']).to.include(who);
          expect(policy.spec.ingress.flatMap((r: Obj) => r.ports.map((p: Obj) => p.port))).to.deep.equal([
            port,
          ]);
        }
      });

      it('runs every container as non-root with a read-only root filesystem', () => {
        for (const o of objs()) {
          const spec = o.spec?.template?.spec;
          if (!spec) continue;
          expect(spec.securityContext?.runAsNonRoot, `${o.kind}/${o.metadata.name}`).to.equal(true);
          for (const c of [...spec.containers, ...(spec.initContainers ?? [])]) {
            expect(c.securityContext?.readOnlyRootFilesystem, `${o.metadata.name}/${c.name}`).to.equal(true);
            expect(c.securityContext?.allowPrivilegeEscalation, `${o.metadata.name}/${c.name}`).to.equal(
              false,
            );
            expect(c.resources?.limits?.memory, `${o.metadata.name}/${c.name} memory limit`).to.be.a(
              'string',
            );
          }
        }
      });
    });
  }
});
