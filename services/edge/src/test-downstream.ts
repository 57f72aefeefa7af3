import { AppError } from '@llmgw/errors';
import type { CallOpts } from '@llmgw/grpc';
import type { AuthenticateResponse, Principal } from '@llmgw/proto/auth';
import {
  ExecuteChatResponse,
  ExecuteEmbedResponse,
  type ErrorKind,
  type ExecutionError,
  type ExecuteChatRequest,
  type ExecuteChatStreamRequest,
  type ExecuteChatStreamResponse,
  type ExecuteEmbedRequest,
} from '@llmgw/proto/executor';
import { QuotaDecision, ReserveQuotaResponse, type ReleaseQuotaRequest, type ReserveQuotaRequest } from '@llmgw/proto/quota';
import { CatalogEntryKind, Operation, type CatalogEntry, type ListModelsRequest, type Plan, type PlanRouteRequest } from '@llmgw/proto/router';
import { AttemptOutcome, ChatRequest, FinishReason, GetUsageResponse, Role, Routing, Usage, type GetUsageRequest, type Message } from '@llmgw/proto/v1';
import type { Downstream } from './downstream.js';
import { testPlan } from './test-config.js';

/** The services behind the edge as a recording fake, for the pipeline's and the HTTP surface's unit tests. */

export const GOOD_KEY = 'sk-test-acme-0000000000000000';
export const OTHER_KEY = 'sk-test-acme-1111111111111111';
export const PRINCIPAL: Principal = { tenantId: 'acme', keyId: 'k-acme', tier: 'startup', scopes: [], admin: false };
export const T0 = 1_700_000_000_000;

export const msg = (role: Role, content: string): Message => ({ role, content, name: '', toolCalls: [], toolCallId: '' });
export const MESSAGES = [msg(Role.ROLE_SYSTEM, 'You are terse.'), msg(Role.ROLE_USER, 'Say hello to the whole wide world, please.')];
export const chatReq = (over: Partial<ChatRequest> = {}): ChatRequest => ChatRequest.fromPartial({ messages: MESSAGES, ...over });

export const ROUTING: Routing = Routing.fromPartial({
  rule: 'default',
  chosenModel: 'small-fast',
  fallbackUsed: true,
  route: 'chat',
  split: '',
  intent: '',
  intentScore: 0,
  attempts: [
    { model: 'claude', provider: 'sim-anthropic', outcome: AttemptOutcome.ATTEMPT_OUTCOME_FAILED, error: 'boom', latencyMs: 5, providerStatus: 500, reason: 'http_5xx', hedge: false },
    { model: 'small-fast', provider: 'sim-openai', outcome: AttemptOutcome.ATTEMPT_OUTCOME_SUCCESS, error: '', latencyMs: 9, providerStatus: 200, reason: '', hedge: false },
  ],
});
/** 8 of the 21 input tokens read from the prompt cache, 2 written to it; 5 of the 34 output tokens reasoning. */
export const USAGE: Usage = Usage.fromPartial({ inputTokens: 21, outputTokens: 34, cachedInputTokens: 8, cacheWriteInputTokens: 2, reasoningTokens: 5, costUsd: 0.000099, costMicros: 99, tokensEstimated: false });

export const allowed = ReserveQuotaResponse.fromPartial({ decision: QuotaDecision.QUOTA_DECISION_ALLOWED, limit: '', remaining: 100 });
export const execError = (kind: ErrorKind, message: string, retryAfterMs = 0): ExecutionError => ({ code: '', message, retryAfterMs, kind });

export type StreamStep = ExecuteChatStreamResponse | { throws: unknown };

/** The services behind the edge, recording every call and their order. */
export class FakeDownstream implements Downstream {
  readonly order: string[] = [];
  readonly calls = {
    authenticate: [] as { apiKey: string; opts: CallOpts }[],
    planRoute: [] as { req: PlanRouteRequest; opts: CallOpts }[],
    reserveQuota: [] as { req: ReserveQuotaRequest; opts: CallOpts }[],
    releaseQuota: [] as { req: ReleaseQuotaRequest; opts: CallOpts }[],
    executeChat: [] as { req: ExecuteChatRequest; opts: CallOpts }[],
    executeChatStream: [] as { req: ExecuteChatStreamRequest; opts: CallOpts }[],
    executeEmbed: [] as { req: ExecuteEmbedRequest; opts: CallOpts }[],
    getUsage: [] as { req: GetUsageRequest; opts: CallOpts }[],
    listModels: [] as { req: ListModelsRequest; opts: CallOpts }[],
  };
  auth: AuthenticateResponse = { principal: PRINCIPAL, cacheTtlMs: 5_000 };
  /** The router's answer: a plan, or an error it throws. */
  plan: Plan | AppError = testPlan('chat', ['small-fast', 'claude']);
  quota: ReserveQuotaResponse = allowed;
  chatResult: () => Promise<ExecuteChatResponse> = async () =>
    ExecuteChatResponse.fromPartial({
      response: {
        id: 'resp-1',
        model: 'small-fast',
        provider: 'sim-openai',
        message: { role: Role.ROLE_ASSISTANT, content: 'Hello, world.' },
        finishReason: FinishReason.FINISH_REASON_STOP,
        usage: USAGE,
        routing: ROUTING,
      },
    });
  stream: StreamStep[] = [];
  embedResult: () => Promise<ExecuteEmbedResponse> = async () =>
    ExecuteEmbedResponse.fromPartial({
      response: { id: 'e1', model: 'embed-small', provider: 'sim-openai', embeddings: [{ index: 0, values: [0.1] }], usage: { inputTokens: 3, costMicros: 1 } },
    });

  totalCalls(): number {
    return Object.values(this.calls).reduce((n, c) => n + c.length, 0);
  }

  async authenticate(apiKey: string, opts: CallOpts): Promise<AuthenticateResponse> {
    this.order.push('authenticate');
    this.calls.authenticate.push({ apiKey, opts });
    return this.auth;
  }
  async planRoute(req: PlanRouteRequest, opts: CallOpts): Promise<Plan> {
    this.order.push('planRoute');
    this.calls.planRoute.push({ req, opts });
    if (this.plan instanceof AppError) throw this.plan;
    return this.plan;
  }
  async reserveQuota(req: ReserveQuotaRequest, opts: CallOpts): Promise<ReserveQuotaResponse> {
    this.order.push('reserveQuota');
    this.calls.reserveQuota.push({ req, opts });
    return this.quota;
  }
  async releaseQuota(req: ReleaseQuotaRequest, opts: CallOpts): Promise<void> {
    this.order.push('releaseQuota');
    this.calls.releaseQuota.push({ req, opts });
  }
  executeChat(req: ExecuteChatRequest, opts: CallOpts): Promise<ExecuteChatResponse> {
    this.order.push('executeChat');
    this.calls.executeChat.push({ req, opts });
    return this.chatResult();
  }
  executeChatStream(req: ExecuteChatStreamRequest, opts: CallOpts): AsyncIterable<ExecuteChatStreamResponse> {
    this.order.push('executeChatStream');
    this.calls.executeChatStream.push({ req, opts });
    const steps = this.stream;
    return (async function* () {
      for (const step of steps) {
        if ('throws' in step) throw step.throws;
        yield step;
      }
    })();
  }
  executeEmbed(req: ExecuteEmbedRequest, opts: CallOpts): Promise<ExecuteEmbedResponse> {
    this.order.push('executeEmbed');
    this.calls.executeEmbed.push({ req, opts });
    return this.embedResult();
  }
  async getUsage(req: GetUsageRequest, opts: CallOpts): Promise<GetUsageResponse> {
    this.calls.getUsage.push({ req, opts });
    return GetUsageResponse.fromPartial({ rows: [] });
  }
  catalog: CatalogEntry[] = [
    { name: 'chat', kind: CatalogEntryKind.CATALOG_ENTRY_KIND_ROUTE, provider: '', capabilities: ['streaming'], operation: Operation.OPERATION_CHAT },
    { name: 'small-fast', kind: CatalogEntryKind.CATALOG_ENTRY_KIND_MODEL, provider: 'sim-openai', capabilities: ['streaming'], operation: Operation.OPERATION_CHAT },
  ];
  async listModels(req: ListModelsRequest, opts: CallOpts): Promise<CatalogEntry[]> {
    this.calls.listModels.push({ req, opts });
    return this.catalog;
  }
  close(): void {}
}

