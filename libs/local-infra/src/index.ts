export * from './processes.js';
export * from './services.js';
