import { Metadata } from '@grpc/grpc-js';
import { callUnary, dial } from '@llmgw/grpc';
import { AuthServiceService } from '@llmgw/proto/auth';
import { ExecutorServiceService } from '@llmgw/proto/executor';
import { QuotaServiceService } from '@llmgw/proto/quota';
import { Operation, PlanRouteRequest, RouterServiceClient, RouterServiceService, type Plan } from '@llmgw/proto/router';
import {
  GatewayServiceService,
  ResponseFormatType,
  GetUsageRequest,
  Role,
  UsageGroupBy,
  UsageServiceService,
  type ChatRequest,
  type EmbedRequest,
} from '@llmgw/proto/v1';
import type { FuzzMethod, FuzzTarget } from './fuzz.js';
import type { Rng } from './fuzz-rng.js';
import { KEYS, type TestMesh } from './harness.js';

/*
 * What the fuzz test sends: every method of every service, a few valid requests each (encoded
 * by ts-proto), and the metadata of each call (a valid key of some tenant, an admin key, a
 * mistyped one, or none; on internal services sometimes x-tenant-id and x-request-id).
 */

interface MethodDef<Req> {
  path: string;
  responseStream: boolean;
  requestSerialize(value: Req): Buffer;
}

function method<Req>(def: MethodDef<Req>, seeds: Req[], weight = 1, ownBudget?: (frame: Buffer) => boolean): FuzzMethod {
  return { path: def.path, stream: def.responseStream, seeds: seeds.map((s) => def.requestSerialize(s)), weight, ownBudget };
}

/** Below this, a request's own timeout_ms may expire before the answer: DEADLINE_EXCEEDED is then correct. */
const TIGHT_TIMEOUT_MS = 1_000;

/** The frame decodes to a request whose timeout_ms is set and tight (the caller's own budget). */
function tightTimeout<Req>(decode: (frame: Buffer) => Req, timeoutOf: (req: Req) => number | undefined): (frame: Buffer) => boolean {
  return (frame) => {
    try {
      const t = timeoutOf(decode(frame));
      return t !== undefined && t > 0 && t < TIGHT_TIMEOUT_MS;
    } catch {
      return false;
    }
  };
}
const chatBudget = tightTimeout((f) => GatewayServiceService.chat.requestDeserialize(f), (r) => r.timeoutMs);
const embedBudget = tightTimeout((f) => GatewayServiceService.embed.requestDeserialize(f), (r) => r.timeoutMs);

const user = (content: string) => ({ role: Role.ROLE_USER, content, name: '', toolCalls: [], toolCallId: '' });

function chatSeeds(): ChatRequest[] {
  const base: ChatRequest = {
    route: '', messages: [user('hi')], taskType: 0, qualityTier: 0, latencyClass: 0, maxTokens: 4, tools: [], timeoutMs: 0, user: '',
    promptVersion: '', metadata: {}, model: '', stop: [], toolChoice: '', priority: 0, template: '', templateVersion: '', templateVariables: {},
    cache: 0,
  };
  return [
    base,
    { ...base, route: 'chat', model: 'small-fast', temperature: 0.2, topP: 0.9, stop: ['END'], user: 'u-1', metadata: { team: 'a' }, timeoutMs: 5_000 },
    { ...base, route: 'fallback', messages: [{ ...user('x'), role: Role.ROLE_SYSTEM, content: 'be brief' }, user('weather?')] },
    {
      ...base,
      tools: [{ name: 'get_weather', description: 'w', parametersJsonSchema: '{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}', sideEffects: false }],
      toolChoice: 'auto',
      messages: [user('weather in Paris?'), { role: Role.ROLE_ASSISTANT, content: '', name: '', toolCalls: [{ id: 'c1', name: 'get_weather', argumentsJson: '{"city":"Paris"}' }], toolCallId: '' }, { role: Role.ROLE_TOOL, content: 'sunny', name: '', toolCalls: [], toolCallId: 'c1' }],
    },
    { ...base, responseFormat: { type: ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_SCHEMA, jsonSchema: '{"type":"object","properties":{"a":{"type":"string"}}}', schemaName: 's' } },
  ];
}

function embedSeeds(): EmbedRequest[] {
  const base: EmbedRequest = { route: 'embeddings', inputs: ['hello'], model: '', user: '', timeoutMs: 0, metadata: {}, dimensions: 0 };
  return [base, { ...base, inputs: ['a', 'b'], dimensions: 8, user: 'u', metadata: { k: 'v' } }];
}

function usageSeeds(): GetUsageRequest[] {
  const base = GetUsageRequest.fromPartial({});
  return [
    base,
    { ...base, groupBy: [UsageGroupBy.USAGE_GROUP_BY_MODEL, UsageGroupBy.USAGE_GROUP_BY_DAY], startTime: new Date(Date.now() - 86_400_000), endTime: new Date() },
    { ...base, tenantId: 'loadtest', route: 'chat', model: 'small-fast' },
  ];
}

/** Real plans, from the router: the executor's seeds are what the edge would send it. */
async function plans(mesh: TestMesh): Promise<{ chat: Plan; embed: Plan }> {
  const router = mesh.dial(RouterServiceClient, 'router', 'edge');
  try {
    const ask = async (route: string, operation: Operation) => {
      const r = await callUnary(router.planRoute.bind(router), PlanRouteRequest.fromPartial({ tenantId: 'loadtest', tier: 'unlimited', route, operation, promptTokens: 3 }), { timeoutMs: 5_000 });
      if (!r.plan) throw new Error(`the router gave no plan for ${route}`);
      return r.plan;
    };
    return { chat: await ask('chat', Operation.OPERATION_CHAT), embed: await ask('embeddings', Operation.OPERATION_EMBED) };
  } finally {
    router.close();
  }
}

/** Every service's methods with their seeds; the executor's chats ask for 4 tokens so a frame that stays valid costs little. */
export async function fuzzTargets(mesh: TestMesh): Promise<FuzzTarget[]> {
  const { chat: chatPlan, embed: embedPlan } = await plans(mesh);
  const addrs = mesh.services.addrs;
  const usage = usageSeeds();
  const params = { messages: [user('hi')], maxTokens: 4, stop: [], tools: [], user: '', batch: false, promptTokens: [], noHedge: false, cache: 0 };
  const exec = (i: number) => ({ requestId: `fuzz-seed-${i}`, tenantId: 'loadtest', plan: chatPlan, params, keyId: 'k-load' });
  return [
    {
      name: 'edge',
      addr: addrs.edge,
      methods: [
        method(GatewayServiceService.chat, chatSeeds(), 2, chatBudget),
        method(GatewayServiceService.chatStream, chatSeeds(), 2, chatBudget),
        method(GatewayServiceService.embed, embedSeeds(), 1, embedBudget),
        method(UsageServiceService.getUsage, usage),
      ],
    },
    {
      name: 'auth',
      addr: addrs.auth,
      methods: [
        method(AuthServiceService.authenticate, [{ apiKey: KEYS.load }, { apiKey: 'llmgw_0000000000000000000000000000000000000000AAAAAA' }, { apiKey: 'sk-unknown' }]),
        method(AuthServiceService.createKey, [{ tenantId: 'other', scopes: ['chat'] }, { tenantId: 'loadtest', scopes: [] }]),
        method(AuthServiceService.revokeKey, [{ keyId: 'k-fuzz-nonexistent' }]),
        method(AuthServiceService.rotateKey, [{ keyId: 'k-fuzz-nonexistent', gracePeriodMs: 1_000 }, { keyId: '', gracePeriodMs: 0 }]),
      ],
    },
    {
      name: 'quota',
      addr: addrs.quota,
      methods: [
        method(QuotaServiceService.reserveQuota, [
          { requestId: 'fuzz-r1', tenantId: 'loadtest', tier: 'unlimited', route: 'chat', model: 'small-fast', estimatedTokens: 100, estimatedCostMicros: 10 },
          { requestId: 'fuzz-r2', tenantId: 'startup-co', tier: 'startup', route: 'chat', model: 'claude', estimatedTokens: 1, estimatedCostMicros: 1 },
        ], 2),
        method(QuotaServiceService.releaseQuota, [{ requestId: 'fuzz-r1', tenantId: 'loadtest' }]),
        method(QuotaServiceService.getQuotaStatus, [{ tenantId: '' }, { tenantId: 'startup-co' }]),
        // An admin's reset SCANs the whole keyspace: a quarter of the share, or Redis spends the run on it.
        method(QuotaServiceService.resetQuota, [{ tenantId: 'other' }], 0.25),
      ],
    },
    {
      name: 'router',
      addr: addrs.router,
      methods: [
        method(RouterServiceService.planRoute, [
          PlanRouteRequest.fromPartial({ tenantId: 'loadtest', tier: 'unlimited', route: 'chat', operation: Operation.OPERATION_CHAT, promptTokens: 10 }),
          PlanRouteRequest.fromPartial({
            tenantId: 'startup-co', tier: 'startup', taskType: 1, qualityTier: 2, latencyClass: 1, priority: 3, model: 'claude', operation: Operation.OPERATION_CHAT,
            requiredCapabilities: ['tools', 'streaming'], promptTokens: 100, stickyBucket: 4_321,
          }),
          PlanRouteRequest.fromPartial({ tenantId: 'loadtest', tier: 'unlimited', route: 'embeddings', operation: Operation.OPERATION_EMBED, requiredCapabilities: ['embeddings'], promptTokens: 1 }),
        ], 2),
        method(RouterServiceService.listModels, [{ tenantId: 'loadtest', tier: 'unlimited' }, { tenantId: 'startup-co', tier: 'startup' }], 1),
      ],
    },
    {
      name: 'provider-executor',
      addr: addrs['provider-executor'],
      methods: [
        method(ExecutorServiceService.executeChat, [exec(1), { ...exec(2), params: { ...params, temperature: 0, stop: ['x'] } }]),
        method(ExecutorServiceService.executeChatStream, [exec(3)]),
        method(ExecutorServiceService.executeEmbed, [
          { requestId: 'fuzz-e1', tenantId: 'loadtest', plan: embedPlan, keyId: 'k-load', request: { route: 'embeddings', inputs: ['hi'], model: '', user: '', timeoutMs: 0, metadata: {}, dimensions: 0 }, promptTokens: [] },
        ]),
      ],
    },
    { name: 'usage-accountant', addr: addrs['usage-accountant'], methods: [method(UsageServiceService.getUsage, usage)] },
  ];
}

const TENANT_KEYS = [KEYS.startup, KEYS.enterprise, KEYS.load, KEYS.other];

/** No key on some calls, a valid one on most, admin on a few, a mistyped or garbled one on others. */
export function fuzzMetadata(rng: Rng, target: FuzzTarget): Metadata {
  const md = new Metadata();
  const r = rng.next();
  if (r < 0.5) md.set('authorization', `Bearer ${rng.pick(TENANT_KEYS)}`);
  else if (r < 0.6) md.set('authorization', `Bearer ${KEYS.admin}`);
  else if (r < 0.7) md.set('authorization', rng.pick(['Bearer', 'Bearer ', 'bearer sk-test-loadtest-00000000000', 'Basic abc', 'Bearer llmgw_0000000000000000000000000000000000000000AAAAAA', `Bearer ${'k'.repeat(4_000)}`, 'Bearer a b']));
  if (target.name !== 'edge' && rng.chance(0.3)) md.set('x-tenant-id', rng.pick(['loadtest', 'startup-co', '', 'nope', '__proto__']));
  if (rng.chance(0.2)) md.set('x-request-id', rng.pick(['fuzz-r1', 'x'.repeat(300), '', '__proto__']));
  return md;
}
