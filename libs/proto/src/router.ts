export * from './gen/llmgateway/router/v1/router_service.js';
