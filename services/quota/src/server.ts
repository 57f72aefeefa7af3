import { unary } from '@llmgw/grpc';
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

/** gRPC mapping only: proto ↔ QuotaManager. A denial is a response, not an RPC error. */
export function quotaHandlers(manager: QuotaManager, logger: Logger): QuotaServiceServer {
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
    }),
    releaseQuota: unary('ReleaseQuota', logger, async (req: ReleaseQuotaRequest): Promise<ReleaseQuotaResponse> => {
      await manager.release(req.tenantId, req.requestId);
      return {};
    }),
    getQuotaStatus: unary('GetQuotaStatus', logger, async (req: GetQuotaStatusRequest): Promise<GetQuotaStatusResponse> => {
      const limits = await manager.status(req.tenantId);
      return { limits };
    }),
    resetQuota: unary('ResetQuota', logger, async (req: ResetQuotaRequest): Promise<ResetQuotaResponse> => {
      await manager.reset(req.tenantId);
      return {};
    }),
  };
}
