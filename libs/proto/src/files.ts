import { fileURLToPath } from 'node:url';

/** Root of the .proto sources, for server reflection and clients that load protos at runtime. */
export const PROTO_ROOT = fileURLToPath(new URL('../../../proto', import.meta.url));

/** Every service file, relative to PROTO_ROOT. */
export const PROTO_FILES = [
  'llmgateway/v1/gateway_service.proto',
  'llmgateway/v1/usage_service.proto',
  'llmgateway/v1/usage_events.proto',
  'llmgateway/auth/v1/auth_service.proto',
  'llmgateway/auth/v1/auth_events.proto',
  'llmgateway/quota/v1/quota_service.proto',
  'llmgateway/quota/v1/quota_events.proto',
  'llmgateway/router/v1/router_service.proto',
  'llmgateway/executor/v1/executor_service.proto',
  'llmgateway/executor/v1/executor_events.proto',
  'llmgateway/mux/v1/mux_service.proto',
];
