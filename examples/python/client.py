"""One chat call and one usage query through the gateway edge, from stubs generated from proto/.

    pip install grpcio grpcio-tools && ./generate.sh
    python3 client.py --key sk-demo-startup-0123456789abcdef "Hello"
"""
import argparse
import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0] + "/gen")

import grpc  # noqa: E402
from llmgateway.v1 import chat_pb2, gateway_service_pb2, gateway_service_pb2_grpc  # noqa: E402
from llmgateway.v1 import usage_service_pb2, usage_service_pb2_grpc  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--addr", default="127.0.0.1:50051")
    parser.add_argument("--key", required=True)
    parser.add_argument("--route", default="")
    parser.add_argument("text", nargs="*", default=["Hello"])
    args = parser.parse_args()

    metadata = [("authorization", f"Bearer {args.key}")]
    with grpc.insecure_channel(args.addr) as channel:
        gateway = gateway_service_pb2_grpc.GatewayServiceStub(channel)
        request = gateway_service_pb2.ChatRequest(
            route=args.route,
            messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, content=" ".join(args.text))],
            max_tokens=200,
        )
        try:
            response = gateway.Chat(request, metadata=metadata, timeout=30)
        except grpc.RpcError as err:
            trailers = dict(err.trailing_metadata() or ())
            print(f"{err.code().name}: {err.details()} retry-after-ms={trailers.get('retry-after-ms')}")
            if "x-routing-bin" in trailers:
                for attempt in chat_pb2.Routing.FromString(trailers["x-routing-bin"]).attempts:
                    print("  attempt", attempt.model, attempt.reason, attempt.provider_status, attempt.error)
            sys.exit(1)
        print("answer:", response.message.content)
        print("model:", response.model, "via", response.provider)
        print("usage:", response.usage.input_tokens, "in,", response.usage.output_tokens, "out, $%.6f" % response.usage.cost_usd)
        print("routing: rule", response.routing.rule, "fallback_used", response.routing.fallback_used)
        for attempt in response.routing.attempts:
            print("  attempt", attempt.model, chat_pb2.AttemptOutcome.Name(attempt.outcome), attempt.error)

        usage = usage_service_pb2_grpc.UsageServiceStub(channel).GetUsage(
            usage_service_pb2.GetUsageRequest(group_by=[usage_service_pb2.USAGE_GROUP_BY_MODEL]),
            metadata=metadata,
            timeout=10,
        )
        for row in usage.rows:
            print("usage so far:", row.model, row.requests, "requests, $%.6f" % row.cost_usd)


if __name__ == "__main__":
    main()
