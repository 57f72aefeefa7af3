import type { IncomingHttpHeaders } from 'node:http';
import { z } from 'zod';
import { CacheMode, LatencyClass, Priority, QualityTier, TaskType, type ChatRequest } from '@llmgw/proto/v1';
import { invalid } from '../validate.js';

/**
 * The gateway's own request fields on the HTTP surface: body fields beside the provider's, or
 * `x-llmgw-*` headers for clients that cannot add body fields (a body field wins). Enum values are
 * the lower-case names of the proto enums (`TASK_TYPE_SUMMARIZATION` → `summarization`).
 */
export const INTENT_FIELDS = {
  task_type: 'x-llmgw-task-type',
  quality_tier: 'x-llmgw-quality-tier',
  latency_class: 'x-llmgw-latency-class',
  priority: 'x-llmgw-priority',
  prompt_version: 'x-llmgw-prompt-version',
  timeout_ms: 'x-llmgw-timeout-ms',
  cache: 'x-llmgw-cache',
} as const;

/** `x-llmgw-metadata-<key>: <value>` adds one metadata entry (header names are lower case). */
export const METADATA_HEADER_PREFIX = 'x-llmgw-metadata-';

export type Intent = Pick<ChatRequest, 'taskType' | 'qualityTier' | 'latencyClass' | 'priority' | 'promptVersion' | 'timeoutMs' | 'cache' | 'metadata' | 'template' | 'templateVersion' | 'templateVariables'>;

/** Body fields of the intent, for the dialects' request schemas. */
export const intentBodyFields = {
  task_type: z.string().optional(),
  quality_tier: z.string().optional(),
  latency_class: z.string().optional(),
  priority: z.string().optional(),
  prompt_version: z.string().max(128).optional(),
  timeout_ms: z.number().int().min(0).optional(),
  /** The route's response cache: use, bypass or refresh (see CacheMode). */
  cache: z.string().optional(),
  metadata: z.record(z.string(), z.string()).optional(),
  /** A prompt template of the config, its version (default: the rollout's or pinned one) and its variables: body fields only. */
  template: z.string().max(64).optional(),
  template_version: z.string().max(63).optional(),
  template_variables: z.record(z.string(), z.string()).optional(),
};

export type IntentBody = { [K in keyof typeof intentBodyFields]?: z.infer<(typeof intentBodyFields)[K]> };

function enumByName<E extends number>(values: Record<string, string | number>, prefix: string): ReadonlyMap<string, E> {
  const out = new Map<string, E>();
  for (const [name, value] of Object.entries(values)) {
    if (typeof value === 'number' && value > 0) out.set(name.slice(prefix.length).toLowerCase(), value as E);
  }
  return out;
}

const TASK_TYPES = enumByName<TaskType>(TaskType, 'TASK_TYPE_');
const QUALITY_TIERS = enumByName<QualityTier>(QualityTier, 'QUALITY_TIER_');
const LATENCY_CLASSES = enumByName<LatencyClass>(LatencyClass, 'LATENCY_CLASS_');
const PRIORITIES = enumByName<Priority>(Priority, 'PRIORITY_');
const CACHE_MODES = enumByName<CacheMode>(CacheMode, 'CACHE_MODE_');

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function enumField<E extends number>(field: keyof typeof INTENT_FIELDS, value: string | undefined, names: ReadonlyMap<string, E>): E | 0 {
  if (value === undefined || value === '') return 0;
  const v = names.get(value.toLowerCase());
  if (v === undefined) throw invalid(field, `must be one of ${[...names.keys()].join(', ')}`);
  return v;
}

/** The intent of one request from its body fields and headers. */
export function intentOf(body: IntentBody, headers: IncomingHttpHeaders): Intent {
  const pick = (field: keyof typeof INTENT_FIELDS): string | undefined => {
    const fromBody = body[field];
    return fromBody === undefined ? header(headers, INTENT_FIELDS[field]) : String(fromBody);
  };
  const metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith(METADATA_HEADER_PREFIX) && typeof value === 'string') metadata[name.slice(METADATA_HEADER_PREFIX.length)] = value;
  }
  Object.assign(metadata, body.metadata);
  const timeout = pick('timeout_ms');
  const timeoutMs = timeout === undefined ? 0 : Number(timeout);
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 0) throw invalid('timeout_ms', 'must be a whole number of milliseconds');
  const promptVersion = pick('prompt_version') ?? '';
  if (promptVersion.length > 128) throw invalid('prompt_version', 'at most 128 characters');
  return {
    taskType: enumField('task_type', pick('task_type'), TASK_TYPES),
    qualityTier: enumField('quality_tier', pick('quality_tier'), QUALITY_TIERS),
    latencyClass: enumField('latency_class', pick('latency_class'), LATENCY_CLASSES),
    priority: enumField('priority', pick('priority'), PRIORITIES),
    cache: enumField('cache', pick('cache'), CACHE_MODES),
    promptVersion,
    timeoutMs,
    metadata,
    template: body.template ?? '',
    templateVersion: body.template_version ?? '',
    templateVariables: { ...body.template_variables },
  };
}
