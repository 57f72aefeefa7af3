import { authSectionsSchema, ConfigError, loadSections, PROFILE_ENV, profileFromEnv, type AuthSections, type Profile } from '@llmgw/config';

/**
 * Auth's part of the config file: the bootstrap keys, each tenant's tier (auth issues the
 * principal's tier) and the auth settings. Nothing else of the file is read (no provider key is
 * ever resolved here). Auth's own environment beyond the runtime's: LLMGW_PROFILE.
 */
export interface AuthConfig {
  sections: AuthSections;
}

export function loadAuthConfig(path: string, env: NodeJS.ProcessEnv): AuthConfig {
  const profile = profileFromEnv(env);
  const sections = loadSections(authSectionsSchema, path, env);
  checkProfile(sections, profile, path);
  return { sections };
}

/**
 * What the production profile refuses in auth's sections: bootstrap keys given as a plaintext
 * `key` (the demo keys, or any secret that sits in a file or an environment variable); production
 * gives `key_sha256` instead. The error names the key ids, never a key.
 */
export function checkProfile(sections: AuthSections, profile: Profile, source: string): void {
  if (profile !== 'production') return;
  const plaintext = sections.api_keys.filter((k) => k.key !== undefined).map((k) => k.id);
  if (plaintext.length === 0) return;
  throw new ConfigError(source, [
    `${PROFILE_ENV}=production refuses api_keys with a plaintext key (ids: ${plaintext.join(', ')}); ` +
      'give key_sha256 instead (printf %s "$KEY" | npm run -s keys -- digest)',
  ]);
}
