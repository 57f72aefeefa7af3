import type { IncomingMessage } from 'node:http';
import { dimensionsOr, embedText } from './embedding.js';
import { SseWriter, sendJson } from './http.js';
import type { BilledParts } from './bill.js';
import { buildReply, chunkTokens, countPromptTokens, countTokens, usageParts, type Reply, type ToolSpec } from './reply.js';
import { BAD_KEY, type ErrorReply, type RequestContext, type WireFormat } from './request-context.js';
import { isRecord } from './schema-sample.js';

/**
 * Gemini API (generativelanguage, v1beta): `models/{model}:generateContent`,
 * `:streamGenerateContent?alt=sse`, `:embedContent`, `:batchEmbedContents`, `:countTokens`.
 */

const GRPC_STATUS: Record<number, string> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  409: 'ABORTED',
  429: 'RESOURCE_EXHAUSTED',
  499: 'CANCELLED',
  500: 'INTERNAL',
  501: 'UNIMPLEMENTED',
  503: 'UNAVAILABLE',
  504: 'DEADLINE_EXCEEDED',
};

export function geminiError(status: number, message: string, retryAfterS?: number): ErrorReply {
  const reply: ErrorReply = {
    status,
    body: { error: { code: status, message, status: GRPC_STATUS[status] ?? (status >= 500 ? 'INTERNAL' : 'FAILED_PRECONDITION') } },
  };
  if (retryAfterS !== undefined) reply.headers = { 'retry-after': String(retryAfterS) };
  return reply;
}

export const geminiFormat: WireFormat = {
  name: 'gemini',
  checkAuth(req: IncomingMessage, query: URLSearchParams) {
    if (query.has('key')) {
      return geminiError(400, 'API key passed in the URL (key=...) is rejected by the simulator; use the x-goog-api-key header.');
    }
    const key = req.headers['x-goog-api-key'];
    if (typeof key !== 'string' || key.trim().length === 0) {
      return geminiError(401, 'Method doesn\'t allow unregistered callers. Please use an API Key (x-goog-api-key header).');
    }
    if (key.trim() === BAD_KEY) return geminiError(401, 'API key not valid. Please pass a valid API key.');
    return undefined;
  },
  error: geminiError,
};

export type GeminiMethod = 'generateContent' | 'streamGenerateContent' | 'embedContent' | 'batchEmbedContents' | 'countTokens';
export const GEMINI_METHODS: ReadonlySet<string> = new Set<GeminiMethod>([
  'generateContent',
  'streamGenerateContent',
  'embedContent',
  'batchEmbedContents',
  'countTokens',
]);

function partsText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!isRecord(content) || !Array.isArray(content['parts'])) return '';
  const out: string[] = [];
  for (const part of content['parts']) {
    if (!isRecord(part)) continue;
    if (typeof part['text'] === 'string') out.push(part['text']);
    const call = part['functionCall'];
    if (isRecord(call)) out.push(`${String(call['name'] ?? '')}${JSON.stringify(call['args'] ?? {})}`);
    const response = part['functionResponse'];
    if (isRecord(response)) out.push(JSON.stringify(response['response'] ?? {}));
  }
  return out.join('\n');
}

interface Summary {
  texts: string[];
  lastUserText: string;
  endsWithToolResult: boolean;
}

function summarize(body: Record<string, unknown>, contents: readonly unknown[]): Summary {
  const texts: string[] = [];
  const system = partsText(body['systemInstruction'] ?? body['system_instruction']);
  if (system.length > 0) texts.push(system);
  let lastUserText = '';
  let endsWithToolResult = false;
  for (const c of contents) {
    const text = partsText(c);
    texts.push(text);
    endsWithToolResult =
      isRecord(c) && Array.isArray(c['parts']) && c['parts'].some((p) => isRecord(p) && p['functionResponse'] !== undefined);
    if (isRecord(c) && (c['role'] === undefined || c['role'] === 'user')) lastUserText = text;
  }
  return { texts, lastUserText, endsWithToolResult };
}

function toolSpecs(tools: unknown): ToolSpec[] {
  if (!Array.isArray(tools)) return [];
  const out: ToolSpec[] = [];
  for (const tool of tools) {
    const decls = isRecord(tool) ? (tool['functionDeclarations'] ?? tool['function_declarations']) : undefined;
    if (!Array.isArray(decls)) continue;
    for (const d of decls) {
      if (isRecord(d) && typeof d['name'] === 'string') {
        out.push({ name: d['name'], schema: d['parametersJsonSchema'] ?? d['parameters'] ?? { type: 'object' } });
      }
    }
  }
  return out;
}

function generationConfig(body: Record<string, unknown>): Record<string, unknown> {
  const config = body['generationConfig'] ?? body['generation_config'];
  return isRecord(config) ? config : {};
}

function finishReason(reply: Reply): 'STOP' | 'MAX_TOKENS' | 'SAFETY' {
  if (reply.kind === 'refusal') return 'SAFETY';
  return reply.kind === 'text' && reply.truncated ? 'MAX_TOKENS' : 'STOP';
}

const SAFETY_RATINGS = [
  { category: 'HARM_CATEGORY_DANGEROUS_CONTENT', probability: 'HIGH', blocked: true },
  { category: 'HARM_CATEGORY_HARASSMENT', probability: 'NEGLIGIBLE' },
  { category: 'HARM_CATEGORY_HATE_SPEECH', probability: 'NEGLIGIBLE' },
  { category: 'HARM_CATEGORY_SEXUALLY_EXPLICIT', probability: 'NEGLIGIBLE' },
];

/** Gemini reports no cache writes; cachedContentTokenCount is a part of promptTokenCount, thoughtsTokenCount is beside candidatesTokenCount. */
function geminiParts(lastUserText: string, promptTokens: number): BilledParts {
  return { ...usageParts(lastUserText, promptTokens), cacheWriteTokens: 0 };
}

function usageMetadata(promptTokens: number, candidateTokens: number | undefined, parts: BilledParts): Record<string, unknown> {
  const usage: Record<string, unknown> = { promptTokenCount: promptTokens };
  if (parts.cachedTokens > 0) usage['cachedContentTokenCount'] = parts.cachedTokens;
  if (candidateTokens !== undefined && candidateTokens > 0) usage['candidatesTokenCount'] = candidateTokens;
  if (parts.reasoningTokens > 0) usage['thoughtsTokenCount'] = parts.reasoningTokens;
  usage['totalTokenCount'] = promptTokens + (candidateTokens ?? 0) + parts.reasoningTokens;
  usage['promptTokensDetails'] = [{ modality: 'TEXT', tokenCount: promptTokens }];
  return usage;
}

function validContents(ctx: RequestContext): unknown[] | undefined {
  const contents = ctx.body['contents'];
  if (Array.isArray(contents) && contents.length > 0) return contents;
  const err = geminiError(400, '* GenerateContentRequest.contents: contents is not specified');
  sendJson(ctx.res, err.status, err.body, err.headers);
  return undefined;
}

export async function handleGenerateContent(ctx: RequestContext, streaming: boolean): Promise<void> {
  const contents = validContents(ctx);
  if (!contents) return;
  const { body, model } = ctx;
  const summary = summarize(body, contents);
  const tools = body['tools'];
  const promptTokens = countPromptTokens(summary.texts, Array.isArray(tools) && tools.length > 0 ? JSON.stringify(tools) : '');
  const config = generationConfig(body);
  const maxTokens = config['maxOutputTokens'] ?? config['max_output_tokens'];
  const mime = config['responseMimeType'] ?? config['response_mime_type'];
  const schema = config['responseJsonSchema'] ?? config['responseSchema'] ?? config['response_schema'];
  const reply = buildReply({
    model,
    lastUserText: summary.lastUserText,
    endsWithToolResult: summary.endsWithToolResult,
    maxTokens: typeof maxTokens === 'number' ? maxTokens : undefined,
    tools: toolSpecs(tools),
    json: mime === 'application/json' ? (schema !== undefined ? { schema } : {}) : undefined,
  });
  const usageOf = geminiParts(summary.lastUserText, promptTokens);
  const responseId = ctx.ids.next('gemresp-');
  const envelope = { modelVersion: model, responseId };

  const finalCandidate = (parts: unknown[] | undefined): Record<string, unknown> => {
    if (reply.kind === 'refusal') return { finishReason: 'SAFETY', index: 0, safetyRatings: SAFETY_RATINGS };
    return { content: { parts: parts ?? [], role: 'model' }, finishReason: finishReason(reply), index: 0 };
  };

  if (!streaming) {
    const parts =
      reply.kind === 'tool' ? [{ functionCall: { name: reply.name, args: reply.args } }] : reply.kind === 'text' ? [{ text: reply.text }] : undefined;
    ctx.meter.complete(promptTokens, reply.outputTokens, usageOf);
    sendJson(ctx.res, 200, {
      candidates: [finalCandidate(parts)],
      usageMetadata: usageMetadata(promptTokens, reply.outputTokens, usageOf),
      ...envelope,
    });
    return;
  }

  // Build the stream as a list of GenerateContentResponse objects; the last carries finishReason.
  // `outputTokens` is what each one adds to the bill once written.
  const chunks: Array<{ response: Record<string, unknown>; outputTokens: number }> = [];
  if (reply.kind === 'text' && reply.tokens.length > 0) {
    const pieces = chunkTokens(reply.tokens);
    let soFar = 0;
    pieces.forEach((piece, i) => {
      soFar += piece.tokenCount;
      const last = i === pieces.length - 1;
      const candidate = last ? finalCandidate([{ text: piece.text }]) : { content: { parts: [{ text: piece.text }], role: 'model' }, index: 0 };
      const response = { candidates: [candidate], usageMetadata: usageMetadata(promptTokens, soFar, usageOf), ...envelope };
      chunks.push({ response, outputTokens: piece.tokenCount });
    });
  } else {
    const parts = reply.kind === 'tool' ? [{ functionCall: { name: reply.name, args: reply.args } }] : [];
    const response = { candidates: [finalCandidate(parts)], usageMetadata: usageMetadata(promptTokens, reply.outputTokens, usageOf), ...envelope };
    chunks.push({ response, outputTokens: reply.outputTokens });
  }

  if (ctx.query.get('alt') !== 'sse') {
    // Without alt=sse the REST API answers with one JSON array of all the responses.
    ctx.meter.complete(promptTokens, reply.outputTokens, usageOf);
    sendJson(ctx.res, 200, chunks.map((c) => c.response));
    return;
  }
  const writer = new SseWriter(ctx.res, ctx.stream, ctx.meter);
  writer.start(promptTokens, undefined, usageOf);
  const frame = (c: (typeof chunks)[number]): string => `data: ${JSON.stringify(c.response)}\r\n\r\n`;
  for (const c of chunks.slice(0, -1)) {
    if (!(await writer.send(frame(c), c.outputTokens))) return;
  }
  const last = chunks[chunks.length - 1] as (typeof chunks)[number];
  await writer.finish(frame(last), last.outputTokens);
}

function embedDims(model: string, requested: unknown): number {
  return dimensionsOr(requested, model.includes('gemini-embedding') ? 3072 : 768);
}

export function handleEmbedContent(ctx: RequestContext): void {
  const content = ctx.body['content'];
  if (!isRecord(content)) {
    const err = geminiError(400, '* EmbedContentRequest.content: content is not specified');
    sendJson(ctx.res, err.status, err.body);
    return;
  }
  const text = partsText(content);
  const values = Array.from(embedText(text, embedDims(ctx.model, ctx.body['outputDimensionality'])));
  // The Gemini API reports no usage for embeddings; bill the text's tokens, as OpenAI does.
  ctx.meter.complete(countTokens(text), 0);
  sendJson(ctx.res, 200, { embedding: { values } });
}

export function handleBatchEmbedContents(ctx: RequestContext): void {
  const requests = ctx.body['requests'];
  if (!Array.isArray(requests) || requests.length === 0 || !requests.every((r) => isRecord(r) && isRecord(r['content']))) {
    const err = geminiError(400, '* BatchEmbedContentsRequest.requests: requests is not specified');
    sendJson(ctx.res, err.status, err.body);
    return;
  }
  let inputTokens = 0;
  const embeddings = (requests as Array<Record<string, unknown>>).map((r) => {
    const text = partsText(r['content']);
    inputTokens += countTokens(text);
    return { values: Array.from(embedText(text, embedDims(ctx.model, r['outputDimensionality']))) };
  });
  ctx.meter.complete(inputTokens, 0);
  sendJson(ctx.res, 200, { embeddings });
}

/** Same count as `usageMetadata.promptTokenCount` of a generateContent call with these contents. */
export function handleCountTokens(ctx: RequestContext): void {
  const nested = ctx.body['generateContentRequest'];
  const body = isRecord(nested) ? nested : ctx.body;
  const contents = Array.isArray(body['contents']) ? body['contents'] : [];
  const tools = body['tools'];
  const total = countPromptTokens(summarize(body, contents).texts, Array.isArray(tools) && tools.length > 0 ? JSON.stringify(tools) : '');
  sendJson(ctx.res, 200, { totalTokens: total, promptTokensDetails: [{ modality: 'TEXT', tokenCount: total }] });
}
