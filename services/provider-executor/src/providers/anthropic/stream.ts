import type { ChatStreamEvent, StreamDecoder } from '../types.js';
import { classifyAnthropicError } from './errors.js';
import { STRUCTURED_OUTPUT_TOOL } from './request.js';
import { anthropicFinishReason, anthropicUsage } from './response.js';
import type { AnthropicStreamEvent } from './wire.js';

/**
 * Decodes Messages streaming events: message_start (input usage), content_block_start/delta
 * (text_delta, input_json_delta), message_delta (stop_reason, output usage), message_stop,
 * error. Tool-call deltas are indexed by tool call, not by content block.
 */
export class AnthropicStreamDecoder implements StreamDecoder {
  done = false;
  /** content block index → tool-call ordinal, or -1 for the structured-output tool. */
  private readonly toolBlocks = new Map<number, number>();
  private tools = 0;
  private structured = false;

  constructor(private readonly provider: string) {}

  decode(event: string, data: string): ChatStreamEvent | undefined {
    let ev: AnthropicStreamEvent;
    try {
      ev = JSON.parse(data) as AnthropicStreamEvent;
    } catch {
      return undefined;
    }
    switch (ev.type ?? event) {
      case 'message_start':
        return ev.message?.usage ? { usage: anthropicUsage(ev.message.usage, false) } : undefined;
      case 'content_block_start': {
        const block = ev.content_block;
        if (!block || block.type !== 'tool_use') return block?.text ? { content: block.text } : undefined;
        const index = ev.index ?? 0;
        if (block.name === STRUCTURED_OUTPUT_TOOL) {
          this.structured = true;
          this.toolBlocks.set(index, -1);
          return undefined;
        }
        const ordinal = this.tools++;
        this.toolBlocks.set(index, ordinal);
        return { toolCalls: [{ index: ordinal, id: block.id ?? '', name: block.name ?? '', argumentsJsonDelta: '' }] };
      }
      case 'content_block_delta': {
        const d = ev.delta;
        if (!d) return undefined;
        if (d.type === 'text_delta') return d.text ? { content: d.text } : undefined;
        if (d.type === 'input_json_delta' && d.partial_json) {
          const ordinal = this.toolBlocks.get(ev.index ?? 0);
          if (ordinal === undefined) return undefined;
          if (ordinal < 0) return { content: d.partial_json };
          return { toolCalls: [{ index: ordinal, id: '', name: '', argumentsJsonDelta: d.partial_json }] };
        }
        return undefined;
      }
      case 'message_delta': {
        const out: ChatStreamEvent = {};
        if (ev.delta?.stop_reason) out.finishReason = anthropicFinishReason(ev.delta.stop_reason, this.structured && this.tools === 0);
        if (ev.usage) out.usage = anthropicUsage(ev.usage, true);
        return out.finishReason !== undefined || out.usage ? out : undefined;
      }
      case 'message_stop':
        this.done = true;
        return undefined;
      case 'error': {
        const type = ev.error?.type ?? 'api_error';
        const status = type === 'overloaded_error' ? 529 : type === 'rate_limit_error' ? 429 : type === 'invalid_request_error' ? 400 : 500;
        throw classifyAnthropicError(this.provider, status, data, {});
      }
      default:
        return undefined;
    }
  }
}
