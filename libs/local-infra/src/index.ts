export * from './processes.js';
export * from './nats-cluster.js';
export * from './services.js';
export * from './mesh-certs.js';
export * from './credentials.js';
export * from './programs.js';
export * from './redis-cluster.js';
