export * from './setup.js';
export * from './spans.js';
export { tracingOn } from './state.js';
