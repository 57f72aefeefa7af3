import { z } from 'zod';
import { ConfigError, ENVIRONMENT } from './load.js';

/**
 * Typed, validated environment. A schema is a z.object keyed by variable name, built from the
 * helpers below; an unset or empty variable is `undefined` to it (so defaults apply). A bad value
 * is a ConfigError naming the variable and what was expected, never NaN:
 *   `DRAIN_MS: expected a non-negative integer, got "abc"`.
 */
export type EnvSchema = z.ZodObject;

export function parseEnv<S extends EnvSchema>(schema: S, env: NodeJS.ProcessEnv = process.env): z.output<S> {
  const picked: Record<string, string | undefined> = {};
  for (const name of Object.keys(schema.shape)) {
    const v = env[name];
    picked[name] = v === undefined || v.trim() === '' ? undefined : v;
  }
  const parsed = schema.safeParse(picked);
  if (!parsed.success) {
    throw new ConfigError(
      ENVIRONMENT,
      parsed.error.issues.map((i) => `${i.path.join('.') || '<root>'}: ${i.message}`),
    );
  }
  return Object.freeze(parsed.data) as z.output<S>;
}

/** A variable's value, or undefined when unset or empty. */
type EnvInput = string | undefined;

/**
 * An env variable parsed by `parse` (undefined = not valid, described by `expected`); a bad value
 * is quoted in the error as `shown` makes it (a URL's password never is).
 */
export function envValue<T>(expected: string, parse: (raw: string) => T | undefined, shown: (raw: string) => string = (raw) => raw): z.ZodType<T, EnvInput> {
  return z.string({ error: (iss) => (iss.input === undefined ? 'is not set' : undefined) }).transform((raw, ctx) => {
    const v = parse(raw.trim());
    if (v === undefined) {
      ctx.addIssue({ code: 'custom', message: `expected ${expected}, got ${JSON.stringify(shown(raw))}` });
      return z.NEVER;
    }
    return v;
  }) as unknown as z.ZodType<T, EnvInput>;
}

function withDefault<T>(schema: z.ZodType<T, EnvInput>, fallback: T | undefined): z.ZodType<T, EnvInput> {
  return fallback === undefined ? schema : (schema.default(fallback as never) as unknown as z.ZodType<T, EnvInput>);
}

/** A required string (`is not set` otherwise), or one with a default. */
export function envString(fallback?: string): z.ZodType<string, EnvInput> {
  return withDefault(envValue('a string', (raw) => raw), fallback);
}

/** An integer in [min, max] (defaults: any safe integer), with an optional default. */
export function envInt(opts: { min?: number; max?: number; default?: number } = {}): z.ZodType<number, EnvInput> {
  const min = opts.min ?? Number.MIN_SAFE_INTEGER;
  const max = opts.max ?? Number.MAX_SAFE_INTEGER;
  const expected =
    min === 0 && max === Number.MAX_SAFE_INTEGER
      ? 'a non-negative integer'
      : min === 1 && max === Number.MAX_SAFE_INTEGER
        ? 'a positive integer'
        : max === Number.MAX_SAFE_INTEGER
          ? `an integer >= ${min}`
          : `an integer from ${min} to ${max}`;
  return withDefault(
    envValue(expected, (raw) => {
      if (!/^[+-]?\d+$/.test(raw)) return undefined;
      const n = Number(raw);
      return Number.isSafeInteger(n) && n >= min && n <= max ? n : undefined;
    }),
    opts.default,
  );
}

/** A duration in milliseconds: a non-negative integer. */
export function envMs(fallback?: number): z.ZodType<number, EnvInput> {
  return envInt({ min: 0, default: fallback });
}

/** A TCP port, 0 to 65535 (0: pick a free one). */
export function envPort(fallback?: number): z.ZodType<number, EnvInput> {
  const schema = envValue('a port number (0-65535)', (raw) => {
    if (!/^\d+$/.test(raw)) return undefined;
    const n = Number(raw);
    return n <= 65_535 ? n : undefined;
  });
  return withDefault(schema, fallback);
}

/** true/false (also 1/0, yes/no, on/off). */
export function envBool(fallback?: boolean): z.ZodType<boolean, EnvInput> {
  return withDefault(
    envValue('true or false', (raw) => {
      const v = raw.toLowerCase();
      if (['true', '1', 'yes', 'on'].includes(v)) return true;
      if (['false', '0', 'no', 'off'].includes(v)) return false;
      return undefined;
    }),
    fallback,
  );
}

/** One of a fixed set of words. */
export function envEnum<const T extends string>(values: readonly T[], fallback?: T): z.ZodType<T, EnvInput> {
  return withDefault(
    envValue(`one of ${values.join(', ')}`, (raw) => (values.includes(raw as T) ? (raw as T) : undefined)),
    fallback,
  );
}

/** A URL as shown in an error: unparseable too, so by pattern (`//user:password@` loses the password). */
export function urlWithoutPassword(raw: string): string {
  return raw.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}

/** A URL with one of the given schemes (e.g. redis:, nats:). */
export function envUrl(protocols: readonly string[], fallback?: string): z.ZodType<string, EnvInput> {
  return withDefault(
    envValue(
      `a ${protocols.map((p) => `${p}//`).join(' or ')} URL`,
      (raw) => {
        try {
          return protocols.includes(new URL(raw).protocol) ? raw : undefined;
        } catch {
          return undefined;
        }
      },
      urlWithoutPassword,
    ),
    fallback,
  );
}
