import type { CallerAuth } from '@llmgw/caller-auth';
import { unary, type RpcMetricsHook } from '@llmgw/grpc';
import type { Logger } from '@llmgw/logging';
import {
  QuotaDecision,
  type GetQuotaStatusRequest,
  type GetQuotaStatusResponse,
  type QuotaServiceServer,
  type ReleaseQuotaRequest,
  type ReleaseQuotaResponse,
  type ReserveQuotaRequest,
  type ReserveQuotaResponse,
  type ResetQuotaRequest,
  type ResetQuotaResponse,
} from '@llmgw/proto/quota';
import type { QuotaManager } from './quota-manager.js';

/**
 * gRPC mapping only: proto ↔ QuotaManager. A denial is a response, not an RPC error. Reserve and
 * release come from the edge on the internal network; the admin view checks the caller's key:
 * a tenant may read its own status, only an admin may read others' or reset counters.
 */
export function quotaHandlers(manager: QuotaManager, logger: Logger, callers: CallerAuth, metrics?: RpcMetricsHook): QuotaServiceServer {
  const rpc = { metrics };
  return {
    reserveQuota: unary('ReserveQuota', logger, async (req: ReserveQuotaRequest): Promise<ReserveQuotaResponse> => {
      const d = await manager.reserve({
        requestId: req.requestId,
        tenantId: req.tenantId,
        route: req.route,
        model: req.model,
        estimatedTokens: req.estimatedTokens,
        estimatedCostMicros: req.estimatedCostMicros,
      });
      return {
        decision: d.allowed ? QuotaDecision.QUOTA_DECISION_ALLOWED : QuotaDecision.QUOTA_DECISION_DENIED,
        limit: d.limit,
        retryAfterMs: d.retryAfterMs,
        limitValue: d.limitValue,
        remaining: d.remaining,
        resetMs: d.resetMs,
        degraded: d.degraded,
      };
    }, rpc),
    releaseQuota: unary('ReleaseQuota', logger, async (req: ReleaseQuotaRequest): Promise<ReleaseQuotaResponse> => {
      await manager.release(req.tenantId, req.requestId);
      return {};
    }, rpc),
    getQuotaStatus: unary('GetQuotaStatus', logger, async (req: GetQuotaStatusRequest, ctx): Promise<GetQuotaStatusResponse> => {
      const limits = await manager.status(await callers.tenantFor(ctx, req.tenantId, 'read the quota status'));
      return { limits };
    }, rpc),
    resetQuota: unary('ResetQuota', logger, async (req: ResetQuotaRequest, ctx): Promise<ResetQuotaResponse> => {
      const admin = await callers.admin(ctx, 'ResetQuota');
      ctx.logger.warn({ tenant: req.tenantId, by: admin.keyId }, 'quota counters reset by an admin');
      await manager.reset(req.tenantId);
      return {};
    }, rpc),
  };
}
