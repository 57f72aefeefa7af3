/**
 * Resolves `${NAME}` and `${NAME:-default}` in every string of a parsed YAML tree.
 * Unresolved names are collected, not thrown one at a time, so a bad config names them all.
 */
export function resolveEnvRefs(value: unknown, env: NodeJS.ProcessEnv, missing: string[], path = ''): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (_m, name: string, fallback?: string) => {
      const found = env[name];
      if (found !== undefined && found !== '') return found;
      if (fallback !== undefined) return fallback;
      missing.push(`${path || '<root>'}: environment variable ${name} is not set`);
      return '';
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => resolveEnvRefs(v, env, missing, `${path}[${i}]`));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, resolveEnvRefs(v, env, missing, path ? `${path}.${k}` : k)]),
    );
  }
  return value;
}
