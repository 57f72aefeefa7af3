export * from './gen/llmgateway/mux/v1/mux_service.js';
