import { requireScope } from '@llmgw/caller-auth';
import { AppError, quoted } from '@llmgw/errors';
import type { Principal } from '@llmgw/proto/auth';
import type { GetUsageRequest, GetUsageResponse } from '@llmgw/proto/v1';
import { summarize } from './summarize.js';
import type { UsageStore } from './usage-store.js';

/** Answers GetUsage for an authenticated caller: tenants see themselves, admins see all. */
export class UsageQueries {
  constructor(
    private readonly store: UsageStore,
    private readonly now: () => number = Date.now,
  ) {}

  async getUsage(req: GetUsageRequest, caller: Principal): Promise<GetUsageResponse> {
    requireScope(caller, 'usage:read');
    const fromMs = req.startTime ? req.startTime.getTime() : 0;
    const toMs = req.endTime ? req.endTime.getTime() : this.now();
    if (Number.isNaN(fromMs) || Number.isNaN(toMs)) throw new AppError('invalid_argument', 'start_time and end_time must be valid timestamps');
    if (toMs < fromMs) throw new AppError('invalid_argument', 'end_time is before start_time');

    let tenants: string[] | undefined;
    if (caller.admin) {
      tenants = req.tenantId ? [req.tenantId] : undefined;
    } else if (!req.tenantId || req.tenantId === caller.tenantId) {
      tenants = [caller.tenantId];
    } else {
      throw new AppError('permission_denied', `tenant ${quoted(caller.tenantId)} may not read the usage of tenant ${quoted(req.tenantId)}`);
    }

    const cells = (await this.readCells(tenants, fromMs, toMs)).filter(
      (c) => (!req.route || c.route === req.route) && (!req.model || c.model === req.model),
    );
    return summarize(cells, req.groupBy);
  }

  private async readCells(tenants: string[] | undefined, fromMs: number, toMs: number) {
    try {
      return await this.store.cells({ tenants, fromMs, toMs });
    } catch (err) {
      throw new AppError('unavailable', 'usage store unavailable', { cause: err });
    }
  }
}
