export * from './metrics.js';
export * from './rpc.js';
export * from './domain.js';
export * from './server.js';
export * from './bus.js';
