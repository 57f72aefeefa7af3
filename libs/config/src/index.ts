export * from './schema.js';
export * from './sections.js';
export * from './load.js';
export * from './env.js';
export * from './watcher.js';
export * from './profile.js';
