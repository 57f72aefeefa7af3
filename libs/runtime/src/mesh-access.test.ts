import { AuthServiceService } from '@llmgw/proto/auth';
import { ExecutorServiceService } from '@llmgw/proto/executor';
import { MultiplexerServiceService } from '@llmgw/proto/mux';
import { QuotaServiceService } from '@llmgw/proto/quota';
import { RouterServiceService } from '@llmgw/proto/router';
import { GatewayServiceService, UsageServiceService } from '@llmgw/proto/v1';
import { describe, expect, it } from 'vitest';
import { accessOf, callersOf, MESH_ACCESS, OPERATOR } from './mesh-access.js';
import { SERVICE_NAMES, type ServiceName } from './service.js';

/** What each server serves (the generated definitions carry every method's path). */
const SERVED: Record<ServiceName, object[]> = {
  edge: [GatewayServiceService, UsageServiceService],
  auth: [AuthServiceService],
  quota: [QuotaServiceService, MultiplexerServiceService],
  router: [RouterServiceService],
  'provider-executor': [ExecutorServiceService, MultiplexerServiceService],
  'usage-accountant': [UsageServiceService],
};

const pathsOf = (defs: object[]) => defs.flatMap((d) => Object.values(d as Record<string, { path: string }>).map((m) => m.path)).sort();

describe('the mesh access table', () => {
  it.each(SERVICE_NAMES)('names every method %s serves, and nothing else', (service) => {
    expect(Object.keys(MESH_ACCESS[service]).sort()).toEqual(pathsOf(SERVED[service]));
  });

  it('lets only the edge spend: router, quota reserve/release and the executor', () => {
    for (const path of [...pathsOf([RouterServiceService, ExecutorServiceService]), '/llmgateway.quota.v1.QuotaService/ReserveQuota', '/llmgateway.quota.v1.QuotaService/ReleaseQuota']) {
      const service = SERVICE_NAMES.find((s) => Object.hasOwn(MESH_ACCESS[s], path))!;
      expect(accessOf(service)(path), path).toEqual(['edge']);
    }
  });

  it('keeps admin methods to the operator certificate', () => {
    for (const [service, path] of [
      ['auth', '/llmgateway.auth.v1.AuthService/CreateKey'],
      ['auth', '/llmgateway.auth.v1.AuthService/RevokeKey'],
      ['auth', '/llmgateway.auth.v1.AuthService/RotateKey'],
      ['quota', '/llmgateway.quota.v1.QuotaService/ResetQuota'],
    ] as const) {
      expect(accessOf(service)(path)).toEqual([OPERATOR]);
    }
  });

  it('opens only the edge to the public, health to every mesh identity, reflection to operators', () => {
    const internal = SERVICE_NAMES.filter((s) => s !== 'edge');
    for (const s of internal) for (const access of Object.values(MESH_ACCESS[s])) expect(access).not.toBe('public');
    for (const path of pathsOf(SERVED.edge)) expect(accessOf('edge')(path)).toBe('public');
    expect(accessOf('quota')('/grpc.health.v1.Health/Check')).toEqual([...SERVICE_NAMES, OPERATOR]);
    expect(accessOf('quota')('/grpc.reflection.v1.ServerReflection/ServerReflectionInfo')).toEqual([OPERATOR]);
    expect(accessOf('edge')('/grpc.health.v1.Health/Watch')).toBe('public');
  });

  it('refuses a path it does not name', () => {
    expect(accessOf('auth')('/llmgateway.auth.v1.AuthService/DumpKeys')).toBeUndefined();
    expect(accessOf('auth')('/llmgateway.quota.v1.QuotaService/ResetQuota')).toBeUndefined();
  });

  it('lets connect to each port only who may call one of its methods (health aside), for the network policies', () => {
    expect(callersOf('edge')).toBe('public');
    expect(callersOf('auth')).toEqual(['edge', 'quota', 'usage-accountant', OPERATOR]);
    // Reflection makes operators callers of every internal service.
    for (const s of ['quota', 'router', 'provider-executor', 'usage-accountant'] as const) expect(callersOf(s)).toEqual(['edge', OPERATOR]);
  });
});
