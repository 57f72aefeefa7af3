import { AppError } from '@llmgw/errors';
import type { Logger } from '@llmgw/logging';
import type { Plan } from '@llmgw/proto/router';
import { AttemptOutcome, type Routing, type Usage } from '@llmgw/proto/v1';

export type AccessOperation = 'chat' | 'chat_stream' | 'embed';

const OUTCOME_NAMES: Record<number, string> = {
  [AttemptOutcome.ATTEMPT_OUTCOME_SUCCESS]: 'success',
  [AttemptOutcome.ATTEMPT_OUTCOME_FAILED]: 'failed',
  [AttemptOutcome.ATTEMPT_OUTCOME_SKIPPED]: 'skipped',
};

/**
 * One request's access log line, filled in as the request goes: the plan once routed, the routing
 * record and usage once the executor answered, the outcome at the end. The line carries what an
 * operator asks of a request (who, which route and model, what it cost, how long, how it ended),
 * never its prompt or answer; the call's logger adds the request id, RPC and tenant.
 */
export class AccessRecord {
  private plan: Plan | undefined;
  private keyId = '';
  private routing: Routing | undefined;
  private usage: Usage | undefined;

  constructor(
    private readonly logger: () => Logger,
    private readonly operation: AccessOperation,
    private readonly startedAt: number,
    private readonly now: () => number,
  ) {}

  planned(plan: Plan, keyId: string): void {
    this.plan = plan;
    this.keyId = keyId;
  }

  /** What the executor answered, on success or failure: its routing record and what was billed. */
  executed(routing: Routing | undefined, usage: Usage | undefined): void {
    this.routing = routing;
    this.usage = usage;
  }

  /** Writes the line; `err` undefined for a request that was answered. */
  finish(err?: unknown): void {
    const r = this.routing;
    const u = this.usage;
    const outcome = err === undefined ? 'ok' : err instanceof AppError ? err.kind : 'internal';
    this.logger().info(
      {
        access: {
          operation: this.operation,
          keyId: this.keyId,
          route: r?.route || this.plan?.route || '',
          rule: r?.rule ?? this.plan?.rule ?? '',
          split: r?.split ?? '',
          intent: r?.intent || this.plan?.intent || '',
          promptVersion: r?.promptVersion ?? '',
          model: r?.chosenModel ?? '',
          fallbackUsed: r?.fallbackUsed ?? false,
          cacheHit: r?.cacheHit ?? false,
          attempts: (r?.attempts ?? []).map((a) => `${a.model}:${OUTCOME_NAMES[a.outcome] ?? 'unknown'}${a.reason ? `:${a.reason}` : ''}`),
          inputTokens: Number(u?.inputTokens ?? 0),
          outputTokens: Number(u?.outputTokens ?? 0),
          costMicros: Number(u?.costMicros ?? 0),
          tokensEstimated: u?.tokensEstimated ?? false,
          latencyMs: Math.max(0, Math.round(this.now() - this.startedAt)),
          outcome,
        },
      },
      'access',
    );
  }
}
