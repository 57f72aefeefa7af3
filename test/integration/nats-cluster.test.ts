import { connect, type JetStreamManager, type NatsConnection, type StreamInfo } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busSettingsFromEnv, connectNatsBus, Consumers, natsCredentialsFromEnv, natsConnectOptions, streamsUsedBy, type NatsEventBus } from '@llmgw/events';
import { meshCredentials, startNatsCluster, type MeshCredentials, type NatsCluster } from '@llmgw/local-infra';
import { silentLogger } from '@llmgw/logging';
import { UsageRecorded } from '@llmgw/proto/v1';
import { UsagePublisher } from '@llmgw/provider-executor';
import type { ServiceName } from '@llmgw/runtime';

/*
 * A three-node JetStream cluster with the users of the sealed mesh: the streams at R3, the
 * executor's usage publisher and the accountant's durable consumer (the services' own bus code)
 * carry on while the node leading the usage stream is down, and the node catches up when back.
 */

const REPLICAS = 3;
let creds: MeshCredentials;
let cluster: NatsCluster;
let admin: NatsConnection;
let jsm: JetStreamManager;
beforeAll(async () => {
  creds = meshCredentials();
  cluster = await startNatsCluster({ nodes: 3, users: creds.natsUsers });
  admin = await connect({ ...natsConnectOptions(cluster.url), maxReconnectAttempts: -1, reconnectTimeWait: 250 });
  jsm = await admin.jetstreamManager();
});
afterAll(async () => {
  await admin?.close();
  await cluster?.stop();
});

/**
 * A bus connected as the service connects, from the environment the mesh gives it (its user, its
 * name, its streams; NATS_URL listing every node, NATS_STREAM_REPLICAS=3), with a short ack
 * wait, so that an ack lost to the failover is redelivered within the test. `url`: instead of
 * the environment's.
 */
function serviceBus(service: ServiceName, url?: string): Promise<NatsEventBus> {
  const env = creds.serviceEnv({ nats: cluster })[service];
  return connectNatsBus({
    url: url ?? env.NATS_URL!,
    name: service,
    logger: silentLogger(),
    credentials: natsCredentialsFromEnv(env),
    streams: streamsUsedBy(service),
    settings: { ...busSettingsFromEnv(env), ackWaitMs: 2_000 },
  });
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await Promise.resolve().then(check).catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const usageInfo = (): Promise<StreamInfo> => jsm.streams.info('USAGE');

/** The stream's leader and both followers know every stored event. */
const allReplicasCurrent = (info: StreamInfo) => info.cluster?.leader !== undefined && info.cluster.replicas?.length === REPLICAS - 1 && info.cluster.replicas.every((r) => r.current && !r.offline && !r.lag);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('JetStream cluster', () => {
  it('keeps every stream of the topology at three replicas: a leader and two current followers', async () => {
    const executor = await serviceBus('provider-executor');
    const accountant = await serviceBus('usage-accountant');
    try {
      for (const stream of ['USAGE', 'ALERTS', 'DEADLETTER']) {
        const info = await jsm.streams.info(stream);
        expect(info.config.num_replicas, stream).toBe(REPLICAS);
        expect(cluster.names).toContain(info.cluster?.leader);
      }
      await until('USAGE replicated on every node', async () => allReplicasCurrent(await usageInfo()));
    } finally {
      await Promise.all([executor.close(), accountant.close()]);
    }
  });

  it('stores and delivers every usage event once while the node leading the stream is down, and the node catches up', async () => {
    const N = 300;
    const before = (await usageInfo()).state.messages;
    const leader = (await usageInfo()).cluster!.leader!;
    const down = cluster.names.indexOf(leader);
    // The executor, and one of two accountant replicas sharing the durable consumer, know only the
    // node that will die: they reconnect to the nodes the cluster told them of. The other
    // accountant is given every node, as NATS_URL lists them.
    const downUrl = `nats://127.0.0.1:${cluster.ports[down]}`;
    const executor = await serviceBus('provider-executor', downUrl);
    const accountants = [await serviceBus('usage-accountant', downUrl), await serviceBus('usage-accountant')];
    const publisher = await UsagePublisher.open(executor, silentLogger(), { retryIntervalMs: 200 });
    const counted = new Set<string>();
    /** Deliveries of an event already counted that JetStream did not mark as redelivered: a second copy stored. */
    let duplicates = 0;
    const stops = await Promise.all(
      accountants.map((bus) =>
        bus.consume(Consumers.usageAccountant.subject, Consumers.usageAccountant.durable, async (data, info) => {
          const id = UsageRecorded.decode(data).eventId;
          if (counted.has(id) && !info.redelivered) duplicates++;
          // As the accountant: an event counts once by its id (an ack lost in the failover brings it again).
          counted.add(id);
        }),
      ),
    );
    const ids = Array.from({ length: N }, (_, i) => `cluster-event-${i}`);
    try {
      for (const bus of [executor, accountants[0]!]) expect(bus.connection?.info?.server_name).toBe(leader);
      // The durable consumer takes the stream's replicas: it survives the node too.
      expect((await jsm.consumers.info('USAGE', Consumers.usageAccountant.durable)).cluster?.replicas).toHaveLength(REPLICAS - 1);
      for (const [i, id] of ids.entries()) {
        if (i === N / 3) await cluster.killNode(down);
        publisher.publish(UsageRecorded.fromPartial({ eventId: id, tenantId: 'cluster-co', route: 'chat', success: true }));
        await sleep(10);
      }

      // With the node still down: every event acknowledged (those published during the election
      // waited in the executor's journal, none dropped) and counted; the election takes 4–9 s.
      await until('every event acknowledged by the stream', () => publisher.pending() === 0, 20_000);
      await until('every event counted by the accountant', () => counted.size === N, 10_000);
      expect(ids.filter((id) => !counted.has(id))).toEqual([]);
      for (const bus of [executor, accountants[0]!]) expect(bus.connection?.info?.server_name).not.toBe(leader);
      const during = await usageInfo();
      expect(during.cluster?.leader).not.toBe(leader);
      expect(during.cluster?.replicas?.find((r) => r.name === leader)?.current).toBeFalsy();
      // Retried publishes were stored once (Nats-Msg-Id = event id).
      expect(during.state.messages - before).toBe(N);
      expect(duplicates).toBe(0);

      await cluster.restartNode(down);
      await until('the restarted node is a current replica again', async () => allReplicasCurrent(await usageInfo()), 15_000);
      expect((await usageInfo()).state.messages - before).toBe(N);
    } finally {
      for (const stop of stops) await stop();
      await publisher.close();
      await Promise.all([executor, ...accountants].map((bus) => bus.close()));
    }
  }, 60_000);
});
