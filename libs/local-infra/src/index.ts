export * from './processes.js';
export * from './services.js';
export * from './credentials.js';
