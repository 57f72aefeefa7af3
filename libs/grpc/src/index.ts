export * from './status-map.js';
export * from './context.js';
export * from './handlers.js';
export * from './server.js';
export * from './client.js';
export * from './dependency-health.js';
export * from './mesh-tls.js';
export * from './authorize.js';
