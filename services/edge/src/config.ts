import { edgeSectionsSchema, envInt, envMs, envString, gatherConfig, isProduction, profileFromEnv, parseEnv, parseSections, readConfigFile, type EdgeSections } from '@llmgw/config';
import { z } from 'zod';
import type { MultiplexerOptions } from '@llmgw/grpc';

const edgeEnvSchema = z.object({
  /** How long a router plan is reused; 0 disables the cache. */
  EDGE_PLAN_CACHE_MS: envMs(1_000),
  /** How often the config file is checked for changes. */
  POLICY_POLL_MS: envMs(500),
  /** TLS on the public port: certificate chain and key files (PEM), re-read every minute; unset: plaintext. */
  EDGE_TLS_CERT_FILE: envString().optional(),
  EDGE_TLS_KEY_FILE: envString().optional(),
  /** The OpenAI- and Anthropic-compatible HTTP surface (base URL http://<addr>/v1); "off" serves none. */
  EDGE_HTTP_ADDR: envString('127.0.0.1:8080'),
  /** Largest HTTP request body; larger ones are 413. */
  EDGE_HTTP_MAX_BODY_BYTES: envInt({ min: 1024, max: 64 * 1024 * 1024, default: 4 * 1024 * 1024 }),
  /** Reserve and execute calls over long-lived multiplexed streams ("on"), or one unary call each ("off"). */
  EDGE_MULTIPLEXED_CALLS: z.enum(['on', 'off']).default('on'),
  /** Long-lived streams per upstream service: each is balanced onto one replica when it opens. */
  EDGE_MUX_STREAMS: envInt({ min: 1, max: 64, default: 2 }),
  /** A stream takes no new calls after this, so that calls follow replicas as they come and go. */
  EDGE_MUX_RECYCLE_MS: envMs(30_000),
  /** One structured "access" log line per chat and embed request. */
  EDGE_ACCESS_LOG: z.enum(['on', 'off']).default('on'),
}).refine((v) => (v.EDGE_TLS_CERT_FILE === undefined) === (v.EDGE_TLS_KEY_FILE === undefined), {
  message: 'EDGE_TLS_CERT_FILE and EDGE_TLS_KEY_FILE go together',
  path: ['EDGE_TLS_CERT_FILE'],
});

/** The edge's part of the config file (the tenants' prompt-log policy) and its environment. */
export interface EdgeConfig {
  sections: EdgeSections;
  planCacheMs: number;
  policyPollMs: number;
  /** Server reflection on the public port: development only (production does not describe its API to strangers). */
  reflection: boolean;
  /** TLS on the public port; absent: plaintext (loopback by default). */
  publicTls?: { certFile: string; keyFile: string };
  /** host:port of the HTTP surface; undefined: none. */
  httpAddr?: string;
  httpMaxBodyBytes: number;
  /** Reserve and execute over multiplexed streams rather than unary calls. */
  multiplexedCalls: boolean;
  /** The multiplexed streams to each of quota and the executor. */
  mux: MultiplexerOptions;
  accessLog: boolean;
}

export function parseEdgeSections(text: string, source: string, env: NodeJS.ProcessEnv): EdgeSections {
  return parseSections(edgeSectionsSchema, text, source, env);
}

/** The file's and the environment's problems together, so that one start error names them all. */
export function loadEdgeConfig(path: string, env: NodeJS.ProcessEnv): EdgeConfig {
  const { sections, vars, profile } = gatherConfig({
    sections: () => parseEdgeSections(readConfigFile(path), path, env),
    vars: () => parseEnv(edgeEnvSchema, env),
    profile: () => profileFromEnv(env),
  });
  const publicTls = vars.EDGE_TLS_CERT_FILE && vars.EDGE_TLS_KEY_FILE ? { certFile: vars.EDGE_TLS_CERT_FILE, keyFile: vars.EDGE_TLS_KEY_FILE } : undefined;
  return {
    sections,
    planCacheMs: vars.EDGE_PLAN_CACHE_MS,
    policyPollMs: vars.POLICY_POLL_MS,
    reflection: !isProduction(profile),
    publicTls,
    httpAddr: vars.EDGE_HTTP_ADDR === 'off' ? undefined : vars.EDGE_HTTP_ADDR,
    httpMaxBodyBytes: vars.EDGE_HTTP_MAX_BODY_BYTES,
    multiplexedCalls: vars.EDGE_MULTIPLEXED_CALLS === 'on',
    mux: { streams: vars.EDGE_MUX_STREAMS, recycleMs: vars.EDGE_MUX_RECYCLE_MS },
    accessLog: vars.EDGE_ACCESS_LOG === 'on',
  };
}
