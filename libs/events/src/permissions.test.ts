import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { SERVICE_NAMES, type ServiceName } from '@llmgw/runtime';
import {
  BUS_ROLES,
  busEnvSchema,
  Consumers,
  natsAuthorizationConfig,
  natsConnectOptions,
  natsCredentialsFromEnv,
  natsPermissions,
  streamsUsedBy,
  Subjects,
  type BusRole,
} from './index.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));

/** NATS subject matching: `*` is one token, `>` the rest. */
function matches(pattern: string, subject: string): boolean {
  const p = pattern.split('.');
  const s = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return s.length > i;
    if (i >= s.length || (p[i] !== '*' && p[i] !== s[i])) return false;
  }
  return p.length === s.length;
}

const publishers = (subject: string) => SERVICE_NAMES.filter((s) => natsPermissions(s).publish.some((p) => matches(p, subject)));
const subscribers = (subject: string) => SERVICE_NAMES.filter((s) => natsPermissions(s).subscribe.some((p) => matches(p, subject)));

/** What a service's source does on the bus, read from its code (not tests). */
function roleInCode(service: ServiceName): BusRole {
  const dir = join(REPO, 'services', service, 'src');
  const code = readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && !f.includes('test-helpers') && !f.includes('test-support'))
    .map((f) => readFileSync(join(dir, f), 'utf8'))
    .join('\n');
  const calls = (method: string) => [...code.matchAll(new RegExp(`\\.${method}\\(\\s*Subjects\\.(\\w+)`, 'g'))].map((m) => Subjects[m[1] as keyof typeof Subjects]);
  const consumers = [...code.matchAll(/Consumers\.(\w+)/g)].map((m) => Consumers[m[1] as keyof typeof Consumers]);
  // CallerAuth (libs/caller-auth) listens to revocations for the services that answer callers.
  const listens = [...calls('onBroadcast'), ...(/new CallerAuth\(/.test(code) ? [Subjects.keyRevoked] : [])];
  return { stores: uniq(calls('publish')), consumes: uniq(consumers), broadcasts: uniq(calls('broadcast')), listens: uniq(listens) };
}

const uniq = <T>(xs: T[]) => [...new Set(xs)];
const sorted = (r: BusRole) => ({ stores: [...r.stores].sort(), consumes: [...r.consumes].map((c) => c.durable).sort(), broadcasts: [...r.broadcasts].sort(), listens: [...r.listens].sort() });

describe('NATS permissions', () => {
  it.each(SERVICE_NAMES)('declare exactly what %s does on the bus in its code', (service) => {
    expect(sorted(BUS_ROLES[service])).toEqual(sorted(roleInCode(service)));
  });

  it('let only the executor publish usage, only auth revocations, only executors backend health and stats', () => {
    expect(publishers(Subjects.usageRecorded)).toEqual(['provider-executor']);
    expect(publishers('llmgateway.usage.v1.anything')).toEqual([]);
    expect(publishers(Subjects.keyRevoked)).toEqual(['auth']);
    expect(publishers(Subjects.backendHealth)).toEqual(['provider-executor']);
    expect(publishers(Subjects.budgetAlert)).toEqual(['quota']);
    expect(publishers(Subjects.tokenGrowthAlert)).toEqual(['usage-accountant']);
    expect(publishers(Subjects.usageDeadLetter)).toEqual(['quota', 'usage-accountant']);
    expect(subscribers(Subjects.backendHealth)).toEqual(['router']);
    expect(publishers(Subjects.backendStats)).toEqual(['provider-executor']);
    expect(subscribers(Subjects.backendStats)).toEqual(['router']);
    expect(subscribers(Subjects.usageRecorded)).toEqual([]);
  });

  it('let a consumer pull and ack only its own durable, and reply subjects only its own', () => {
    const acks = (s: ServiceName) => natsPermissions(s).publish.filter((p) => p.startsWith('$JS.ACK.'));
    expect(acks('usage-accountant')).toEqual(['$JS.ACK.USAGE.usage-accountant.>', '$JS.ACK.ALERTS.budget-alert-notifier.>', '$JS.ACK.ALERTS.token-growth-alert-notifier.>']);
    expect(acks('quota')).toEqual(['$JS.ACK.USAGE.quota-reconciler.>']);
    expect(publishers('$JS.ACK.USAGE.usage-accountant.1.5.5.1700000000.0')).toEqual(['usage-accountant']);
    expect(publishers('$JS.API.CONSUMER.MSG.NEXT.USAGE.quota-reconciler')).toEqual(['quota']);
    expect(publishers('$JS.API.CONSUMER.CREATE.USAGE.usage-accountant.llmgateway.usage.v1.recorded')).toEqual(['usage-accountant']);
    expect(publishers('$JS.API.CONSUMER.DELETE.USAGE.usage-accountant')).toEqual([]);
    expect(subscribers('_INBOX.usage-accountant.abc.1')).toEqual(['usage-accountant']);
  });

  it('let a service create and update only the streams it uses', () => {
    expect(Object.fromEntries(SERVICE_NAMES.map((s) => [s, streamsUsedBy(s).sort()]))).toEqual({
      edge: [],
      auth: [],
      quota: ['ALERTS', 'DEADLETTER', 'USAGE'],
      router: [],
      'provider-executor': ['USAGE'],
      'usage-accountant': ['ALERTS', 'DEADLETTER', 'USAGE'],
    });
    expect(publishers('$JS.API.STREAM.UPDATE.USAGE')).toEqual(['quota', 'provider-executor', 'usage-accountant']);
    expect(publishers('$JS.API.STREAM.DELETE.USAGE')).toEqual([]);
  });

  it('render the nats-server authorization block, with a deny for a user that publishes nothing', () => {
    const passwords = Object.fromEntries([...SERVICE_NAMES, 'admin'].map((u) => [u, `pw-${u}`])) as Record<ServiceName | 'admin', string>;
    const conf = natsAuthorizationConfig(passwords);
    const lines = conf.split('\n');
    expect(lines.slice(0, 2)).toEqual(['authorization {', '  users = [']);
    expect(lines).toContain(
      '    { user: "edge", password: "pw-edge", permissions: { publish: { deny: [">"] }, subscribe: { allow: ["llmgateway.auth.v1.key_revoked", "_INBOX.edge.>"] } } }',
    );
    expect(lines).toContain(
      '    { user: "provider-executor", password: "pw-provider-executor", permissions: { publish: { allow: ["llmgateway.usage.v1.recorded", "llmgateway.executor.v1.backend_health", "llmgateway.executor.v1.backend_stats", ' +
        '"$JS.API.STREAM.INFO.USAGE", "$JS.API.STREAM.CREATE.USAGE", "$JS.API.STREAM.UPDATE.USAGE"] }, subscribe: { allow: ["_INBOX.provider-executor.>"] } } }',
    );
    expect(lines).toContain('    { user: "admin", password: "pw-admin" }');
    expect(lines.filter((l) => l.includes('user:'))).toHaveLength(7);
    expect(conf.endsWith('  ]\n}\n')).toBe(true);
  });
});

describe('NATS credentials', () => {
  it('come from NATS_USER and NATS_PASSWORD, both or neither, never quoting the password', () => {
    expect(natsCredentialsFromEnv({})).toBeUndefined();
    expect(natsCredentialsFromEnv({ NATS_USER: 'quota', NATS_PASSWORD: 'p' })).toEqual({ user: 'quota', pass: 'p' });
    expect(() => natsCredentialsFromEnv({ NATS_USER: 'quota' })).toThrow(/NATS_PASSWORD: is not set \(NATS_USER is\)/);
    expect(() => natsCredentialsFromEnv({ NATS_PASSWORD: 'secret-value' })).toThrow(/NATS_USER: is not set/);
    expect(() => natsCredentialsFromEnv({ NATS_PASSWORD: 'secret-value' })).not.toThrow(/secret-value/);
    expect(Object.keys(busEnvSchema.shape)).toEqual(expect.arrayContaining(['NATS_USER', 'NATS_PASSWORD']));
  });

  it('or from the URL, which nats.js is given without them', () => {
    expect(natsConnectOptions('nats://admin:p%40ss@127.0.0.1:4222')).toEqual({ servers: ['nats://127.0.0.1:4222'], user: 'admin', pass: 'p@ss' });
    expect(natsConnectOptions('nats://a:b@h1:4222, nats://h2:4222')).toEqual({ servers: ['nats://h1:4222', 'nats://h2:4222'], user: 'a', pass: 'b' });
    expect(natsConnectOptions('nats://a:b@h1:4222', { user: 'quota', pass: 'q' })).toEqual({ servers: ['nats://h1:4222'], user: 'quota', pass: 'q' });
    expect(natsConnectOptions('nats://h1:4222')).toEqual({ servers: ['nats://h1:4222'] });
  });
});
