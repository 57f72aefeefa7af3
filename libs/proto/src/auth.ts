export * from './gen/llmgateway/auth/v1/auth_service.js';
export * from './gen/llmgateway/auth/v1/auth_events.js';
