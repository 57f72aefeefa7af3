export * from './gen/llmgateway/auth/v1/auth_service.js';
