import { credentials, Metadata } from '@grpc/grpc-js';
import { Pool } from 'undici';
import { ChatRequest, GatewayServiceClient, Role, type ChatResponse, type ChatStreamResponse } from '@llmgw/proto/v1';
import { grpcFrame, type LoadTarget } from './h2load.js';

export const BENCH_KEY = 'sk-bench-000000000000000000';
export const PROMPT = 'Summarise the benefits of a shared LLM gateway in one sentence. [[tokens:32]]';
export const MAX_TOKENS = 64;

/** The bench's chat in OpenAI's wire format. */
export function chatBody(model: string, stream = false): string {
  return JSON.stringify({ model, messages: [{ role: 'user', content: PROMPT }], max_tokens: MAX_TOKENS, stream, ...(stream ? { stream_options: { include_usage: true } } : {}) });
}

/** The bench's chat as the gRPC edge takes it (the default route). */
export function chatRequest(route = '', content = PROMPT, maxTokens = MAX_TOKENS): ChatRequest {
  return ChatRequest.fromPartial({ route, messages: [{ role: Role.ROLE_USER, content }], maxTokens });
}

/** The same request over OpenAI's wire format: to the simulator direct, or to the edge's HTTP surface. */
export function openAiClient(baseUrl: string, opts: { model: string; apiKey: string; headers?: Record<string, string> }) {
  const url = new URL(baseUrl);
  const pool = new Pool(url.origin, { connections: 128, pipelining: 1 });
  const path = `${url.pathname.replace(/\/$/, '')}/v1/chat/completions`;
  const headers = { authorization: `Bearer ${opts.apiKey}`, 'content-type': 'application/json', ...opts.headers };
  const unary = chatBody(opts.model);
  const streamed = chatBody(opts.model, true);
  return {
    chat: async () => {
      const res = await pool.request({ path, method: 'POST', headers, body: unary });
      if (res.statusCode !== 200) throw new Error(`${url.origin} answered ${res.statusCode}: ${await res.body.text()}`);
      await res.body.json();
    },
    /** Resolves with the time to the first content chunk and to the end of the stream. */
    stream: async (): Promise<{ ttft: number; total: number }> => {
      const t0 = performance.now();
      const res = await pool.request({ path, method: 'POST', headers, body: streamed });
      let ttft = NaN;
      for await (const chunk of res.body) {
        if (Number.isNaN(ttft) && String(chunk).includes('"content"')) ttft = performance.now() - t0;
      }
      return { ttft, total: performance.now() - t0 };
    },
    close: () => pool.close(),
  };
}

/** The same request, straight to the simulator over HTTP. */
export function directClient(simulatorUrl: string) {
  return openAiClient(simulatorUrl, { model: 'gpt-4o-mini', apiKey: 'bench-key' });
}

/** The same request through the gateway's edge, on `route` (the default route when empty); `chat` resolves with the answer. */
export function meshClient(edgeAddr: string, route = '') {
  const client = new GatewayServiceClient(edgeAddr, credentials.createInsecure());
  const md = new Metadata();
  md.set('authorization', `Bearer ${BENCH_KEY}`);
  const unary = chatRequest(route);
  return {
    chat: () =>
      new Promise<ChatResponse>((resolve, reject) => {
        client.chat(unary, md, { deadline: Date.now() + 30_000 }, (err, res) => (err || !res ? reject(err) : resolve(res)));
      }),
    stream: (route = '', content = PROMPT, maxTokens = MAX_TOKENS) =>
      new Promise<{ ttft: number; total: number }>((resolve, reject) => {
        const t0 = performance.now();
        let ttft = NaN;
        const call = client.chatStream(chatRequest(route, content, maxTokens), md, { deadline: Date.now() + 120_000 });
        call.on('data', (m: ChatStreamResponse) => {
          if (Number.isNaN(ttft) && m.contentDelta) ttft = performance.now() - t0;
        });
        call.on('error', reject);
        call.on('end', () => resolve({ ttft, total: performance.now() - t0 }));
      }),
    close: () => client.close(),
  };
}

/** The bench's chat as h2load sends it over HTTP/1.1 in OpenAI's wire format, to `origin` (http://host:port). */
export function httpChatLoad(origin: string, headers: Record<string, string>, model: string): LoadTarget {
  return { url: `${origin}/v1/chat/completions`, protocol: 'h1', headers: { 'content-type': 'application/json', ...headers }, body: chatBody(model) };
}

/** The same against the edge's HTTP surface with the bench key. */
export function surfaceChatLoad(httpAddr: string): LoadTarget {
  return httpChatLoad(`http://${httpAddr}`, { authorization: `Bearer ${BENCH_KEY}` }, 'chat');
}

/** The bench's chat as h2load sends it to a gRPC edge: HTTP/2 without TLS, one length-prefixed message. */
export function grpcChatLoad(addr: string): LoadTarget {
  return {
    url: `http://${addr}/llmgateway.v1.GatewayService/Chat`,
    protocol: 'h2c',
    headers: { 'content-type': 'application/grpc', te: 'trailers', authorization: `Bearer ${BENCH_KEY}` },
    body: grpcFrame(ChatRequest.encode(chatRequest()).finish()),
  };
}
