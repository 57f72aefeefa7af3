import { parseArgs } from 'node:util';
import { credentials, Metadata } from '@grpc/grpc-js';
import { ChatRequest, ChatResponse, GatewayServiceClient, Role } from '@llmgw/proto/v1';

/** `npm run chat -- --key <key> "text"`: one chat call through the edge, printed as JSON. */
const { values, positionals } = parseArgs({
  options: {
    key: { type: 'string' },
    addr: { type: 'string', default: process.env.EDGE_ADDR ?? '127.0.0.1:50051' },
    route: { type: 'string', default: '' },
  },
  allowPositionals: true,
});
const client = new GatewayServiceClient(values.addr ?? '127.0.0.1:50051', credentials.createInsecure());
const md = new Metadata();
md.set('authorization', `Bearer ${values.key ?? process.env.LLMGW_API_KEY ?? ''}`);
client.chat(
  ChatRequest.fromPartial({ route: values.route ?? '', messages: [{ role: Role.ROLE_USER, content: positionals.join(' ') || 'Hello' }] }),
  md,
  { deadline: Date.now() + 30_000 },
  (err, res) => {
    if (err) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    process.stdout.write(`${JSON.stringify(ChatResponse.toJSON(res), null, 2)}\n`);
    client.close();
  },
);
