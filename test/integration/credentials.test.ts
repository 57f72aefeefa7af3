import { Redis } from 'ioredis';
import { connect, type NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectNatsBus, Consumers, inboxPrefix, natsConnectOptions, streamsUsedBy, Subjects, type NatsEventBus } from '@llmgw/events';
import { meshCredentials, redisUrl, startNatsServer, startRedisServer, type LocalServer, type MeshCredentials } from '@llmgw/local-infra';
import { createLogger, silentLogger } from '@llmgw/logging';
import { connectRedis } from '@llmgw/redis';
import type { ServiceName } from '@llmgw/runtime';

/*
 * The sealed mesh against real servers: each service's NATS user and Redis user can do what its
 * role needs (permissions.ts, acl.ts) and the servers refuse the rest.
 */

let creds: MeshCredentials;
let redis: LocalServer;
let nats: LocalServer;
beforeAll(async () => {
  creds = meshCredentials();
  [redis, nats] = await Promise.all([startRedisServer({ users: creds.redisUsers }), startNatsServer({ users: creds.natsUsers })]);
});
afterAll(async () => {
  await Promise.all([redis?.stop(), nats?.stop()]);
});

const bytes = (s: string) => new TextEncoder().encode(s);

/** A bus connected as the service would connect (its user, its name, its streams). */
function serviceBus(service: ServiceName): Promise<NatsEventBus> {
  return connectNatsBus({
    url: `nats://127.0.0.1:${nats.port}`,
    name: service,
    logger: silentLogger(),
    credentials: { user: service, pass: creds.natsUsers[service] },
    streams: streamsUsedBy(service),
  });
}

/** A plain connection as a service's user, collecting the errors the server reports asynchronously (nats.js gives their code). */
async function rawConnection(service: ServiceName): Promise<{ nc: NatsConnection; errors: string[] }> {
  const nc = await connect({ ...natsConnectOptions(`nats://127.0.0.1:${nats.port}`, { user: service, pass: creds.natsUsers[service] }), inboxPrefix: inboxPrefix(service) });
  const errors: string[] = [];
  void (async () => {
    for await (const s of nc.status()) if (s.type === 'error') errors.push(String(s.data));
  })();
  return { nc, errors };
}

const violated = (errors: string[]) => () => errors.includes('PERMISSIONS_VIOLATION');

async function storedUsageEvents(): Promise<number> {
  const admin = await connect(natsConnectOptions(nats.url));
  try {
    return (await (await admin.jetstreamManager()).streams.info('USAGE')).state.messages;
  } finally {
    await admin.close();
  }
}

async function until(check: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('NATS users', () => {
  it('refuses a client without credentials or with a wrong password', async () => {
    await expect(connect({ servers: `nats://127.0.0.1:${nats.port}` })).rejects.toThrow(/authorization violation/i);
    await expect(connect({ servers: `nats://127.0.0.1:${nats.port}`, user: 'quota', pass: 'not-the-password' })).rejects.toThrow(/authorization violation/i);
  });

  it('stores the executor’s usage events, delivers them to the accountant’s and quota’s consumers, which ack them', async () => {
    const executor = await serviceBus('provider-executor');
    const accountant = await serviceBus('usage-accountant');
    const quota = await serviceBus('quota');
    try {
      const before = await storedUsageEvents();
      await executor.publish(Subjects.usageRecorded, bytes('event-1'), 'cred-event-1');
      expect(await storedUsageEvents()).toBe(before + 1);
      const got: Record<string, string[]> = { accountant: [], quota: [] };
      const stops = await Promise.all([
        accountant.consume(Consumers.usageAccountant.subject, Consumers.usageAccountant.durable, async (d) => void got.accountant!.push(new TextDecoder().decode(d))),
        quota.consume(Consumers.quotaReconciler.subject, Consumers.quotaReconciler.durable, async (d) => void got.quota!.push(new TextDecoder().decode(d))),
      ]);
      await until(() => got.accountant!.includes('event-1') && got.quota!.includes('event-1'));
      // The acks reached the server: nothing is left pending for either consumer.
      const admin = await connect(natsConnectOptions(nats.url));
      const jsm = await admin.jetstreamManager();
      await until(async () => (await jsm.consumers.info('USAGE', Consumers.usageAccountant.durable)).num_ack_pending === 0);
      await until(async () => (await jsm.consumers.info('USAGE', Consumers.quotaReconciler.durable)).num_ack_pending === 0);
      await admin.close();
      for (const stop of stops) await stop();
    } finally {
      await Promise.all([executor.close(), accountant.close(), quota.close()]);
    }
  });

  it.each(['router', 'edge', 'usage-accountant', 'quota'] as const)('refuses a usage event published by %s: a permissions violation, never stored', async (service) => {
    const before = await storedUsageEvents();
    const { nc, errors } = await rawConnection(service);
    try {
      nc.publish(Subjects.usageRecorded, bytes('forged'));
      await nc.flush();
      await until(violated(errors));
      expect(await storedUsageEvents()).toBe(before);
    } finally {
      await nc.close();
    }
  });

  it('lets only auth broadcast a revocation, and the edge hear it', async () => {
    const { nc: edge } = await rawConnection('edge');
    const { nc: auth } = await rawConnection('auth');
    const { nc: router, errors } = await rawConnection('router');
    try {
      const heard: string[] = [];
      edge.subscribe(Subjects.keyRevoked, { callback: (_err, m) => heard.push(new TextDecoder().decode(m.data)) });
      await edge.flush();
      router.publish(Subjects.keyRevoked, bytes('from-router'));
      auth.publish(Subjects.keyRevoked, bytes('from-auth'));
      await Promise.all([router.flush(), auth.flush()]);
      await until(() => heard.includes('from-auth') && violated(errors)());
      expect(heard).toEqual(['from-auth']);
    } finally {
      await Promise.all([edge.close(), auth.close(), router.close()]);
    }
  });

  it('refuses a subscription to another service’s replies (pulled usage events arrive there)', async () => {
    const { nc } = await rawConnection('router');
    try {
      const refused: string[] = [];
      nc.subscribe('_INBOX.usage-accountant.>', { callback: (err) => err && refused.push(err.message) });
      await nc.flush();
      await until(() => refused.length > 0);
      expect(refused[0]).toMatch(/Permissions Violation for Subscription to "_INBOX.usage-accountant.>"/);
    } finally {
      await nc.close();
    }
  });

  it('lets a service manage only the streams it uses', async () => {
    const executor = await rawConnection('provider-executor');
    const quota = await rawConnection('quota');
    try {
      // Quota stores alerts (ALERTS); the executor stores only usage (USAGE).
      await expect(quota.nc.request('$JS.API.STREAM.INFO.ALERTS', undefined, { timeout: 2_000 })).resolves.toBeDefined();
      executor.nc.publish('$JS.API.STREAM.UPDATE.ALERTS', bytes('{}'));
      await executor.nc.flush();
      await until(violated(executor.errors));
    } finally {
      await Promise.all([executor.nc.close(), quota.nc.close()]);
    }
  });
});

describe('Redis users', () => {
  const as = (user: 'auth' | 'quota' | 'usage-accountant') => new Redis(creds.redisUrlOf(user, redis.port), { maxRetriesPerRequest: 0 });

  it('lets each service use its own prefix and nothing else (NOPERM), scripts included', async () => {
    const quota = as('quota');
    const auth = as('auth');
    try {
      await quota.set('llmgw:quota:{t}:r:1', 'x');
      expect(await quota.get('llmgw:quota:{t}:r:1')).toBe('x');
      await auth.hset('auth:keys', 'digest', '{}');
      await expect(quota.hget('auth:keys', 'digest')).rejects.toThrow(/NOPERM/);
      await expect(quota.set('usage:tenants', 'x')).rejects.toThrow(/NOPERM/);
      await expect(auth.get('llmgw:quota:{t}:r:1')).rejects.toThrow(/NOPERM/);
      // A script runs with its caller's rights: its keys and its commands are checked.
      await auth.set('auth:grace:digest', '{}');
      await expect(quota.eval("return redis.call('GET', KEYS[1])", 1, 'auth:grace:digest')).rejects.toThrow(/NOPERM/);
      await expect(quota.eval("return redis.call('GET', 'auth:grace:digest')", 0)).rejects.toThrow(/can't access at least one of the keys/);
      // …and so are its commands: quota has no HGET.
      await expect(quota.eval("return redis.call('HGET', KEYS[1], 'f')", 1, 'llmgw:quota:{t}:r:1')).rejects.toThrow(/can't run this command/);
    } finally {
      quota.disconnect();
      auth.disconnect();
    }
  });

  it.each(['auth', 'quota', 'usage-accountant'] as const)('refuses %s the dangerous commands', async (user) => {
    const r = as(user);
    try {
      // (DEBUG is refused before the ACL is checked, unless enable-debug-command is set.)
      for (const cmd of [['FLUSHALL'], ['FLUSHDB'], ['KEYS', '*'], ['CONFIG', 'GET', '*'], ['ACL', 'LIST'], ['SCRIPT', 'FLUSH'], ['MONITOR'], ['SHUTDOWN']]) {
        await expect(r.call(cmd[0]!, ...cmd.slice(1)), cmd.join(' ')).rejects.toThrow(/NOPERM/);
      }
    } finally {
      r.disconnect();
    }
  });

  it('refuses the default user without a password, and a wrong password without printing it', async () => {
    const anonymous = new Redis(`redis://127.0.0.1:${redis.port}`, { maxRetriesPerRequest: 0 });
    anonymous.on('error', () => undefined);
    try {
      await expect(anonymous.get('auth:keys')).rejects.toThrow(/NOAUTH/);
    } finally {
      anonymous.disconnect();
    }
    const wrong = 'wrong-password-7f3a';
    const lines: string[] = [];
    const logger = createLogger({ service: 'test', destination: { write: (l: string) => void lines.push(l) } });
    const failure = await connectRedis(redisUrl('quota', wrong, redis.port), { logger }).then(
      () => 'connected',
      (err: unknown) => (err instanceof Error ? err.message : String(err)),
    );
    expect(failure).toMatch(/^cannot reach Redis at redis:\/\/quota:\*\*\*@127\.0\.0\.1/);
    expect(lines.join('\n')).toMatch(/WRONGPASS/);
    expect([failure, ...lines].join('\n')).not.toContain(wrong);
  });
});
