import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { Metadata } from '@grpc/grpc-js';
import type { AccountantSections } from '@llmgw/config';
import { AppError } from '@llmgw/errors';
import type { Logger } from '@llmgw/logging';
import type { Principal } from '@llmgw/proto/auth';
import { dashboardData, MAX_DASHBOARD_HOURS } from './dashboard-data.js';
import { DASHBOARD_CSS, DASHBOARD_HTML, DASHBOARD_JS } from './dashboard-page.js';
import type { UsageQueries } from './usage-queries.js';

export interface DashboardDeps {
  queries: UsageQueries;
  /** The caller of a key (auth's Authenticate, cached); throws AppError unauthenticated. */
  principal: (ctx: { metadata: Metadata; requestId: string }) => Promise<Principal>;
  sections: () => AccountantSections;
  logger: Logger;
  now: () => number;
}

const STATUS: Partial<Record<AppError['kind'], number>> = { unauthenticated: 401, permission_denied: 403, invalid_argument: 400, unavailable: 503 };

/** The page is static; only its data needs a key. Nothing is loaded from elsewhere, nothing is framed. */
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

const STATIC: Record<string, { type: string; body: string }> = {
  '/dashboard': { type: 'text/html; charset=utf-8', body: DASHBOARD_HTML },
  '/dashboard/app.js': { type: 'text/javascript; charset=utf-8', body: DASHBOARD_JS },
  '/dashboard/style.css': { type: 'text/css; charset=utf-8', body: DASHBOARD_CSS },
};

/**
 * The usage dashboard, on the accountant's HTTP port: GET /dashboard (the page), GET
 * /dashboard/data?hours=N with `authorization: Bearer <key>` (an admin key sees every tenant,
 * a tenant key its own, as GetUsage). The page keeps the key in the tab's session storage and
 * takes one from the URL's fragment (#key=…), which browsers never send to a server.
 */
export function createDashboardServer(deps: DashboardDeps): Server {
  return createServer((req, res) => {
    void handle(deps, req, res).catch((err: unknown) => {
      deps.logger.error({ err }, 'dashboard request failed');
      if (!res.headersSent) json(res, 500, { error: 'internal error' });
      else res.destroy();
    });
  });
}

async function handle(deps: DashboardDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://dashboard');
  if (req.method !== 'GET' && req.method !== 'HEAD') return json(res, 405, { error: 'only GET' });
  if (url.pathname === '/' || url.pathname === '/dashboard/') {
    res.writeHead(302, { location: '/dashboard', ...SECURITY_HEADERS }).end();
    return;
  }
  const asset = STATIC[url.pathname];
  if (asset) {
    res.writeHead(200, { 'content-type': asset.type, ...SECURITY_HEADERS }).end(req.method === 'HEAD' ? undefined : asset.body);
    return;
  }
  if (url.pathname !== '/dashboard/data') return json(res, 404, { error: 'not found' });

  const hoursText = url.searchParams.get('hours') ?? '24';
  const hours = /^\d{1,4}$/.test(hoursText) ? Number(hoursText) : NaN;
  if (!(hours >= 1 && hours <= MAX_DASHBOARD_HOURS)) return json(res, 400, { error: `hours must be an integer from 1 to ${MAX_DASHBOARD_HOURS}` });
  const metadata = new Metadata();
  const authorization = req.headers.authorization;
  if (authorization) metadata.set('authorization', authorization);
  try {
    const caller = await deps.principal({ metadata, requestId: randomUUID() });
    json(res, 200, await dashboardData(deps.queries, caller, deps.sections(), hours, deps.now()));
  } catch (err) {
    if (!(err instanceof AppError)) throw err;
    // Auth's answer "invalid key" arrives as a gRPC error: the caller's problem, not ours.
    json(res, STATUS[err.kind] ?? 500, { error: err.message });
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', ...SECURITY_HEADERS }).end(JSON.stringify(body));
}

/** Listens on host:port; resolves with the port. */
export async function listenDashboard(server: Server, addr: string): Promise<number> {
  const i = addr.lastIndexOf(':');
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(addr.slice(i + 1)), addr.slice(0, i), () => resolve());
  });
  const a = server.address();
  return typeof a === 'object' && a ? a.port : 0;
}
