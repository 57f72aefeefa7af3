import { Role } from '@llmgw/proto/v1';
import type { ChatParams } from '../types.js';
import type { GeminiBatchEmbedRequest, GeminiContent, GeminiPart, GeminiRequest } from './wire.js';

function parseObject(json: string): Record<string, unknown> {
  if (!json) return {};
  try {
    const v = JSON.parse(json) as unknown;
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : { result: v };
  } catch {
    return { result: json };
  }
}

function push(out: GeminiContent[], role: 'user' | 'model', part: GeminiPart): void {
  const last = out[out.length - 1];
  // Parallel function responses (and any consecutive turns of one role) share one content.
  if (last && last.role === role) last.parts.push(part);
  else out.push({ role, parts: [part] });
}

/** ChatParams → Gemini generateContent body. Pure. */
export function toGeminiRequest(params: ChatParams): GeminiRequest {
  const system: Array<{ text: string }> = [];
  const contents: GeminiContent[] = [];
  const toolNames = new Map<string, string>();
  for (const m of params.messages) {
    switch (m.role) {
      case Role.ROLE_SYSTEM:
        system.push({ text: m.content });
        break;
      case Role.ROLE_ASSISTANT:
        if (m.content || m.toolCalls.length === 0) push(contents, 'model', { text: m.content });
        for (const c of m.toolCalls) {
          toolNames.set(c.id, c.name);
          push(contents, 'model', { functionCall: { name: c.name, args: parseObject(c.argumentsJson) } });
        }
        break;
      case Role.ROLE_TOOL:
        push(contents, 'user', {
          functionResponse: { name: toolNames.get(m.toolCallId) ?? m.name ?? m.toolCallId, response: parseObject(m.content) },
        });
        break;
      default:
        push(contents, 'user', { text: m.content });
    }
  }
  const body: GeminiRequest = { contents, generationConfig: { maxOutputTokens: params.maxTokens } };
  if (system.length > 0) body.systemInstruction = { parts: system };
  const gc = body.generationConfig;
  if (params.temperature !== undefined) gc.temperature = params.temperature;
  if (params.topP !== undefined) gc.topP = params.topP;
  if (params.stop.length > 0) gc.stopSequences = [...params.stop];
  const rf = params.responseFormat;
  if (rf.type !== 'text') gc.responseMimeType = 'application/json';
  if (rf.type === 'json_schema') gc.responseJsonSchema = rf.schema;
  if (params.tools.length > 0) {
    body.tools = [
      {
        functionDeclarations: params.tools.map((t) =>
          t.description
            ? { name: t.name, description: t.description, parametersJsonSchema: t.parameters }
            : { name: t.name, parametersJsonSchema: t.parameters },
        ),
      },
    ];
    const tc = params.toolChoice;
    body.toolConfig = {
      functionCallingConfig:
        tc.type === 'tool' ? { mode: 'ANY', allowedFunctionNames: [tc.name] } : { mode: tc.type === 'required' ? 'ANY' : tc.type === 'none' ? 'NONE' : 'AUTO' },
    };
  }
  return body;
}

/** Inputs → batchEmbedContents body. Pure. */
export function toGeminiBatchEmbedRequest(upstreamModel: string, inputs: readonly string[], dimensions: number): GeminiBatchEmbedRequest {
  const model = `models/${upstreamModel}`;
  return {
    requests: inputs.map((text) =>
      dimensions > 0 ? { model, content: { parts: [{ text }] }, outputDimensionality: dimensions } : { model, content: { parts: [{ text }] } },
    ),
  };
}
