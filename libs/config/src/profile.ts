import { z } from 'zod';
import { envEnum, parseEnv } from './env.js';

/**
 * The deployment profile, defined once for every service: `development` (the default: demo keys,
 * conveniences) or `production` (refuses what is only safe on a laptop, e.g. plaintext bootstrap
 * keys in the config). Read from LLMGW_PROFILE; any other value is a start error naming it.
 */
export const PROFILES = ['development', 'production'] as const;
export type Profile = (typeof PROFILES)[number];

export const PROFILE_ENV = 'LLMGW_PROFILE';

export const profileEnvSchema = z.object({ [PROFILE_ENV]: envEnum(PROFILES, 'development') });

/** The profile of this process; a ConfigError (`LLMGW_PROFILE: expected one of ...`) for a bad value. */
export function profileFromEnv(env: NodeJS.ProcessEnv = process.env): Profile {
  return parseEnv(profileEnvSchema, env)[PROFILE_ENV] as Profile;
}

export function isProduction(profile: Profile): boolean {
  return profile === 'production';
}
