import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { resolveEnvRefs } from './env-refs.js';
import { gatewayConfigSchema, type GatewayConfig } from './schema.js';

/** A config that cannot be used. The message names every problem and the file. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`invalid config ${source}: ${problems.join('; ')}`);
  }
}

export function parseGatewayConfig(text: string, source: string, env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  let raw: unknown;
  try {
    raw = parse(text);
  } catch (err) {
    throw new ConfigError(source, [`not valid YAML: ${err instanceof Error ? err.message : String(err)}`]);
  }
  const missing: string[] = [];
  const resolved = resolveEnvRefs(raw, env, missing);
  const parsed = gatewayConfigSchema.safeParse(resolved);
  const problems = [...missing];
  if (!parsed.success) {
    for (const issue of parsed.error.issues) problems.push(`${issue.path.join('.') || '<root>'}: ${issue.message}`);
  }
  if (problems.length > 0 || !parsed.success) throw new ConfigError(source, problems);
  return deepFreeze(parsed.data);
}

export function loadGatewayConfig(path: string, env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(path, [`cannot read file: ${err instanceof Error ? err.message : String(err)}`]);
  }
  return parseGatewayConfig(text, path, env);
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
