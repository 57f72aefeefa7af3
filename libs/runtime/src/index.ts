export * from './service.js';
export * from './main.js';
export * from './metrics.js';
export * from './mesh-access.js';
