export * from './gen/llmgateway/executor/v1/executor_service.js';
export * from './gen/llmgateway/executor/v1/executor_events.js';
