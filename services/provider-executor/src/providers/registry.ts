import type { ProviderConfig } from '@llmgw/config';
import { AppError } from '@llmgw/errors';
import { createAnthropicAdapter } from './anthropic/index.js';
import { createGeminiAdapter } from './gemini/index.js';
import { createOpenAIAdapter, DEFAULT_AZURE_API_VERSION } from './openai/index.js';
import type { ProviderAdapter } from './types.js';

/** The one factory switch on the wire format; quirks are adapter options, never branches in generic code. */
export function createAdapter(id: string, p: ProviderConfig): ProviderAdapter {
  const common = { id, baseUrl: p.base_url, apiKey: p.api_key, timeoutMs: p.timeout_ms, maxConnections: p.max_connections };
  switch (p.kind) {
    case 'openai':
      return createOpenAIAdapter(common);
    case 'azure-openai':
      return createOpenAIAdapter({ ...common, azure: { apiVersion: p.api_version || DEFAULT_AZURE_API_VERSION } });
    case 'anthropic':
      return createAnthropicAdapter({ ...common, apiVersion: p.api_version });
    case 'gemini':
      return createGeminiAdapter({ ...common, apiVersion: p.api_version });
  }
}

export interface ProviderRegistry {
  /** Throws AppError for an id no adapter was built for. */
  get(id: string): ProviderAdapter;
  has(id: string): boolean;
  close(): Promise<void>;
}

/** Builds one adapter (and connection pool) per configured provider; duplicate ids are rejected. */
export function createRegistry(adapters: readonly ProviderAdapter[]): ProviderRegistry {
  const byId = new Map<string, ProviderAdapter>();
  for (const a of adapters) {
    if (byId.has(a.id)) throw new Error(`duplicate provider id "${a.id}"`);
    byId.set(a.id, a);
  }
  return {
    get(id) {
      const a = byId.get(id);
      if (!a) throw new AppError('invalid_argument', `unknown provider "${id}"`);
      return a;
    },
    has: (id) => byId.has(id),
    close: async () => {
      await Promise.all([...byId.values()].map((a) => a.close()));
    },
  };
}

export function registryFromProviders(providers: Readonly<Record<string, ProviderConfig>>): ProviderRegistry {
  return createRegistry(Object.entries(providers).map(([id, p]) => createAdapter(id, p)));
}
