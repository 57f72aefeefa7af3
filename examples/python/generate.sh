#!/usr/bin/env bash
# Generates Python stubs from proto/ into ./gen (pip install grpcio grpcio-tools first).
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p gen
python3 -m grpc_tools.protoc -I ../../proto --python_out=gen --grpc_python_out=gen \
  ../../proto/llmgateway/v1/chat.proto ../../proto/llmgateway/v1/gateway_service.proto \
  ../../proto/llmgateway/v1/usage_service.proto
