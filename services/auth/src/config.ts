import { authSectionsSchema, loadSections, type AuthSections } from '@llmgw/config';

/**
 * Auth's part of the config file: the bootstrap keys, each tenant's tier (auth issues the
 * principal's tier) and the auth settings. Nothing else of the file is read (no provider key is
 * ever resolved here). Auth has no environment of its own beyond the runtime's.
 */
export interface AuthConfig {
  sections: AuthSections;
}

export function loadAuthConfig(path: string, env: NodeJS.ProcessEnv): AuthConfig {
  return { sections: loadSections(authSectionsSchema, path, env) };
}
