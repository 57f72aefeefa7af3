export * from './gen/llmgateway/v1/chat.js';
export * from './gen/llmgateway/v1/gateway_service.js';
export * from './gen/llmgateway/v1/usage_service.js';
export * from './gen/llmgateway/v1/usage_events.js';
export * from './gen/llmgateway/v1/alert_events.js';
