export * from './gen/llmgateway/quota/v1/quota_service.js';
export * from './gen/llmgateway/quota/v1/quota_events.js';
