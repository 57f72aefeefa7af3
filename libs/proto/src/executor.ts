export * from './gen/llmgateway/executor/v1/executor_service.js';
