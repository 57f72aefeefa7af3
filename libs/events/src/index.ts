export * from './bus.js';
export * from './topology.js';
export * from './memory-bus.js';
export * from './nats-bus.js';
export * from './permissions.js';
