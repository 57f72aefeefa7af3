import type { Plan, PlanRouteRequest } from '@llmgw/proto/router';

interface Entry {
  plan: Plan;
  expiresAt: number;
}

/**
 * Recent plans of the router, so that a steady stream of similar requests does not pay a router
 * round trip each. A plan depends on the request's prompt size (rules' `prompt_tokens`, models'
 * context limits) and sticky bucket (split arms) only through ranges: the router says for which
 * prompt sizes and buckets a plan holds, and an entry is reused only for those. Entries live
 * `ttlMs`: a policy change in the router reaches the edge within that time.
 */
export class PlanCache {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly opts: { ttlMs: number; now: () => number; maxEntries?: number },
  ) {}

  get enabled(): boolean {
    return this.opts.ttlMs > 0;
  }

  static key(req: PlanRouteRequest): string {
    return [req.tenantId, req.tier, req.route, req.taskType, req.qualityTier, req.latencyClass, req.priority, req.model, req.modelOrRoute, req.operation, req.requiredCapabilities.join(','), req.intent].join('\u0000');
  }

  get(req: PlanRouteRequest): Plan | undefined {
    if (!this.enabled) return undefined;
    const key = PlanCache.key(req);
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= this.opts.now()) {
      this.entries.delete(key);
      return undefined;
    }
    const { promptTokensMin, promptTokensMax, stickyBucketMin, stickyBucketMax } = entry.plan;
    const holds =
      req.promptTokens >= promptTokensMin && req.promptTokens <= promptTokensMax && req.stickyBucket >= stickyBucketMin && req.stickyBucket <= stickyBucketMax;
    return holds ? entry.plan : undefined;
  }

  set(req: PlanRouteRequest, plan: Plan): void {
    if (!this.enabled) return;
    const key = PlanCache.key(req);
    if (!this.entries.has(key) && this.entries.size >= (this.opts.maxEntries ?? 10_000)) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    this.entries.set(key, { plan, expiresAt: this.opts.now() + this.opts.ttlMs });
  }
}
