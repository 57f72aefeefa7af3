import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, credentials, Metadata, status, type ChannelCredentials, type ChannelOptions, type ServiceError } from '@grpc/grpc-js';
import { afterAll, describe, expect, it } from 'vitest';
import { createGrpcServer, drain, listen, meshTls, meshTlsFilesIn, Multiplexer, publicTls, type GrpcServer } from '@llmgw/grpc';
import type { AppError } from '@llmgw/errors';
import { QuotaServiceService, ReserveQuotaRequest, ResetQuotaRequest } from '@llmgw/proto/quota';
import { createMeshCertificates, createMeshPki, freePort } from '@llmgw/local-infra';
import { MESH_ACCESS, OPERATOR, SERVICE_NAMES, type MeshIdentity, type ServiceName } from '@llmgw/runtime';
import { useTestMesh } from '../src/harness.js';

const mesh = useTestMesh();
const scratch = mkdtempSync(join(tmpdir(), 'llmgw-tls-test-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const INTERNAL = SERVICE_NAMES.filter((s) => s !== 'edge');
const IDENTITIES: MeshIdentity[] = [...SERVICE_NAMES, OPERATOR];
const STREAMING = new Set(['/llmgateway.executor.v1.ExecutorService/ExecuteChatStream']);
const raw = (b: Buffer) => b;

/** One call with an empty request frame; resolves with the final status code. */
function callRaw(addr: string, path: string, creds: ChannelCredentials, options: ChannelOptions = {}): Promise<{ code: number; details: string }> {
  const client = new Client(addr, creds, options);
  const deadline = Date.now() + 5_000;
  return new Promise((resolve) => {
    const done = (err: ServiceError | null) => {
      client.close();
      resolve({ code: err?.code ?? status.OK, details: err?.details ?? '' });
    };
    if (STREAMING.has(path)) {
      const call = client.makeServerStreamRequest(path, raw, raw, Buffer.alloc(0), new Metadata(), { deadline });
      call.on('data', () => undefined);
      call.on('error', done);
      call.on('end', () => done(null));
    } else {
      client.makeUnaryRequest(path, raw, raw, Buffer.alloc(0), new Metadata(), { deadline }, (err) => done(err));
    }
  });
}

const methodsOf = (service: ServiceName) => Object.entries(MESH_ACCESS[service]) as [string, readonly MeshIdentity[]][];
const cases = INTERNAL.flatMap((service) => methodsOf(service).map(([path, allowed]) => ({ service, path, allowed })));

describe('mutual TLS inside the mesh', () => {
  it.each(cases)('$path on $service: only its callers get past authorization', async ({ service, path, allowed }) => {
    const addr = mesh().services.addrs[service];
    for (const identity of IDENTITIES) {
      const link = mesh().linkAs(identity, service);
      const r = await callRaw(addr, path, link.credentials, link.options);
      if (allowed.includes(identity)) {
        // Past authorization the empty request meets the method's own checks (key, arguments).
        expect(r.code, `${identity}: ${r.details}`).not.toBe(status.UNAVAILABLE);
        expect(r.details).not.toContain('may not call');
      } else {
        expect(r.code, `${identity} calling ${path}`).toBe(status.PERMISSION_DENIED);
        expect(r.details).toContain(`${identity} may not call`);
      }
    }
  });

  it('checks every call multiplexed on a stream against the method it names, not only the stream', async () => {
    const link = mesh().linkAs('edge', 'quota');
    const mux = new Multiplexer(new Client(mesh().services.addrs.quota, link.credentials, link.options));
    const reserved = await mux.call(QuotaServiceService.reserveQuota, ReserveQuotaRequest.fromPartial({}), { timeoutMs: 5_000 }).catch((e: AppError) => e);
    // The edge may reserve: its empty request gets past authorization to the method's own checks.
    expect(reserved).toMatchObject({ kind: 'invalid_argument' });
    const reset = await mux.call(QuotaServiceService.resetQuota, ResetQuotaRequest.fromPartial({ tenantId: 'acme' }), { timeoutMs: 5_000 }).catch((e: AppError) => e);
    expect(reset).toMatchObject({ kind: 'permission_denied' });
    expect((reset as AppError).message).toContain('edge may not call');
    mux.close();
  });

  it.each(INTERNAL)('%s refuses the handshake without a client certificate, and with a certificate of another CA', async (service) => {
    const addr = mesh().services.addrs[service];
    const [path, allowed] = methodsOf(service)[0]!;
    const ca = readFileSync(join(mesh().pki.dirOf(OPERATOR), 'ca.crt'));
    const noCert = await callRaw(addr, path, credentials.createSsl(ca), { 'grpc.ssl_target_name_override': service });
    expect(noCert.code).toBe(status.UNAVAILABLE);

    const foreign = createMeshCertificates(join(scratch, `foreign-${service}`), [allowed[0]!]);
    const link = meshTls(meshTlsFilesIn(foreign.dirOf(allowed[0]!)), 60_000).channelTo(service);
    const other = await callRaw(addr, path, link.credentials, link.options);
    expect(other.code).toBe(status.UNAVAILABLE);

    // A client holding only the mesh CA (no certificate) cannot pretend either: plaintext is refused too.
    const plain = await callRaw(addr, path, credentials.createInsecure());
    expect(plain.code).toBe(status.UNAVAILABLE);
  });

  it('a client refuses a server whose certificate names another service', async () => {
    // The quota address, dialled as if it were the router: the SAN check fails the handshake.
    const link = mesh().linkAs('edge', 'router');
    const r = await callRaw(mesh().services.addrs.quota, '/llmgateway.router.v1.RouterService/PlanRoute', link.credentials, link.options);
    expect(r.code).toBe(status.UNAVAILABLE);
  });
});

describe('certificates from files', () => {
  async function serverOn(transport: ReturnType<typeof meshTls>): Promise<{ g: GrpcServer; addr: string }> {
    const g = createGrpcServer(['llmgateway.router.v1.RouterService'], { transport, access: () => ['edge'] });
    const port = await listen(g, '127.0.0.1:0');
    return { g, addr: `127.0.0.1:${port}` };
  }
  const health = '/grpc.health.v1.Health/Check';

  it('re-reads a renewed certificate and CA without a restart', async () => {
    const first = createMeshPki(join(scratch, 'first'));
    const second = createMeshPki(join(scratch, 'second'));
    const live = join(scratch, 'live-router');
    const install = (from: string) => {
      for (const f of ['ca.crt', 'tls.crt', 'tls.key']) copyFileSync(join(from, f), join(live, f));
    };
    mkdirSync(live);
    install(first.dirOf('router'));
    const { g, addr } = await serverOn(meshTls(meshTlsFilesIn(live), 200));
    try {
      const edgeOf = (pki: typeof first) => meshTls(meshTlsFilesIn(pki.dirOf('edge')), 60_000).channelTo('router');
      const before = edgeOf(first);
      expect((await callRaw(addr, health, before.credentials, before.options)).code).toBe(status.OK);
      install(second.dirOf('router'));
      await new Promise((r) => setTimeout(r, 600));
      const after = edgeOf(second);
      expect((await callRaw(addr, health, after.credentials, after.options)).code).toBe(status.OK);
      // New connections from the old CA's certificates are refused now.
      const stale = edgeOf(first);
      expect((await callRaw(addr, health, stale.credentials, stale.options)).code).toBe(status.UNAVAILABLE);
    } finally {
      g.server.forceShutdown();
    }
  });

  it('serves the public port over server-only TLS when given a certificate and key', async () => {
    const pki = createMeshPki(join(scratch, 'public'));
    const dir = pki.dirOf('edge');
    const g = createGrpcServer(['llmgateway.v1.GatewayService'], { transport: publicTls(join(dir, 'tls.crt'), join(dir, 'tls.key'), 60_000) });
    const port = await listen(g, '127.0.0.1:0');
    try {
      const ca = readFileSync(join(dir, 'ca.crt'));
      const r = await callRaw(`127.0.0.1:${port}`, health, credentials.createSsl(ca), { 'grpc.ssl_target_name_override': 'localhost' });
      expect(r.code).toBe(status.OK);
      expect((await callRaw(`127.0.0.1:${port}`, health, credentials.createInsecure())).code).toBe(status.UNAVAILABLE);
    } finally {
      g.server.forceShutdown();
    }
  });

  it('serves health alone, in plaintext, on the probe address of a TLS server (for kubelet probes)', async () => {
    const pki = createMeshPki(join(scratch, 'probe'));
    const probeAddr = `127.0.0.1:${await freePort()}`;
    const g = createGrpcServer(['llmgateway.router.v1.RouterService'], { transport: meshTls(meshTlsFilesIn(pki.dirOf('router')), 60_000), access: () => ['edge'], healthProbeAddr: probeAddr });
    const port = await listen(g, '127.0.0.1:0');
    try {
      const plain = credentials.createInsecure();
      expect((await callRaw(probeAddr, health, plain)).code).toBe(status.OK);
      expect((await callRaw(probeAddr, '/llmgateway.router.v1.RouterService/PlanRoute', plain)).code).toBe(status.UNIMPLEMENTED);
      expect((await callRaw(`127.0.0.1:${port}`, health, plain)).code).toBe(status.UNAVAILABLE);
    } finally {
      await drain(g, 0, 100);
    }
  });
});
