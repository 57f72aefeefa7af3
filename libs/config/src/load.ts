import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import type { z } from 'zod';
import { resolveEnvRefs } from './env-refs.js';
import { gatewayConfigSchema, type GatewayConfig } from './sections.js';

/** A config (file or environment) that cannot be used. The message names every problem and where. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(
    /** The file, or "environment". */
    readonly source: string,
    readonly problems: string[],
  ) {
    super(source === ENVIRONMENT ? `invalid environment: ${problems.join('; ')}` : `invalid config ${source}: ${problems.join('; ')}`);
  }
}

export const ENVIRONMENT = 'environment';

/** Top-level schema of a view: an object schema whose shape names the sections it reads. */
export type SectionsSchema = z.ZodObject;

/**
 * Parses the sections of the config text that `schema` names. Only those top-level keys are
 * picked, before any `${ENV}` reference is resolved: a service never resolves, needs or holds
 * another service's sections or secrets. (A strict top-level schema, the whole file's, takes
 * every key, so that it names unknown sections.) Every problem (YAML, unset variables, schema,
 * cross-checks) is collected into one ConfigError. The result is deeply frozen.
 */
export function parseSections<S extends SectionsSchema>(schema: S, text: string, source: string, env: NodeJS.ProcessEnv = process.env): z.output<S> {
  let raw: unknown;
  try {
    raw = parse(text);
  } catch (err) {
    throw new ConfigError(source, [`not valid YAML: ${err instanceof Error ? err.message : String(err)}`]);
  }
  if (raw === null || raw === undefined) raw = {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(source, ['<root>: expected a mapping of sections']);
  const all = raw as Record<string, unknown>;
  const picked: Record<string, unknown> = {};
  for (const key of Object.keys(schema.shape)) {
    if (Object.hasOwn(all, key)) picked[key] = all[key];
  }
  // A strict top-level schema (the whole-file check) sees every key, so that it can name unknown ones.
  if (isStrict(schema)) Object.assign(picked, all);
  const missing: string[] = [];
  const resolved = resolveEnvRefs(picked, env, missing);
  const parsed = schema.safeParse(resolved);
  const problems = [...missing];
  // A value whose variable is unset is reported once, as unset, not again as invalid.
  const unsetPaths = new Set(missing.map((m) => m.slice(0, m.indexOf(': environment variable '))));
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const path = issue.path.join('.') || '<root>';
      if (!unsetPaths.has(path)) problems.push(`${path}: ${issue.message}`);
    }
  }
  if (problems.length > 0 || !parsed.success) throw new ConfigError(source, problems);
  return deepFreeze(parsed.data) as z.output<S>;
}

/** parseSections over a file. */
export function loadSections<S extends SectionsSchema>(schema: S, path: string, env: NodeJS.ProcessEnv = process.env): z.output<S> {
  return parseSections(schema, readConfigFile(path), path, env);
}

export function readConfigFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(path, [`cannot read file: ${err instanceof Error ? err.message : String(err)}`]);
  }
}

/** The whole file, every cross-reference checked. For the whole-file check only (launcher, config:check). */
export function parseGatewayConfig(text: string, source: string, env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  return parseSections(gatewayConfigSchema, text, source, env);
}

export function loadGatewayConfig(path: string, env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  return parseGatewayConfig(readConfigFile(path), path, env);
}

/**
 * Runs each part (sections of the file, environment, ...) and returns all results, or throws one
 * ConfigError naming the problems of every part that failed, so a start error lists them all.
 */
export function gatherConfig<T extends Record<string, () => unknown>>(parts: T): { [K in keyof T]: ReturnType<T[K]> } {
  const out: Record<string, unknown> = {};
  const errors: ConfigError[] = [];
  for (const [name, part] of Object.entries(parts)) {
    try {
      out[name] = part();
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      errors.push(err);
    }
  }
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) {
    const sources = [...new Set(errors.flatMap((e) => e.source.split(' and ')))];
    const problems = errors.flatMap((e) => e.problems.map((p) => (e.source === ENVIRONMENT ? `${ENVIRONMENT}: ${p}` : p)));
    throw new ConfigError(sources.join(' and '), problems);
  }
  return out as { [K in keyof T]: ReturnType<T[K]> };
}

function isStrict(schema: SectionsSchema): boolean {
  return schema._zod.def.catchall?._zod.def.type === 'never';
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
