/** OpenAI Chat Completions / Embeddings JSON, as far as the gateway uses it. Folder-private. */

export interface OpenAIToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export type OpenAIMessage =
  | { role: 'system' | 'user'; content: string; name?: string }
  | { role: 'assistant'; content: string | null; name?: string; tool_calls?: OpenAIToolCall[] }
  | { role: 'tool'; content: string; tool_call_id: string };

export interface OpenAIChatRequest {
  /** Absent for Azure, which names the deployment in the URL. */
  model?: string;
  messages: OpenAIMessage[];
  max_tokens?: number;
  max_completion_tokens?: number;
  temperature?: number;
  top_p?: number;
  stop?: string[];
  response_format?:
    | { type: 'json_object' }
    | { type: 'json_schema'; json_schema: { name: string; schema: Record<string, unknown> } };
  tools?: Array<{ type: 'function'; function: { name: string; description?: string; parameters: Record<string, unknown> } }>;
  tool_choice?: 'auto' | 'none' | 'required' | { type: 'function'; function: { name: string } };
  user?: string;
  stream?: boolean;
  stream_options?: { include_usage: boolean };
}

export interface OpenAIUsage {
  prompt_tokens?: number;
  completion_tokens?: number;
  /** cached_tokens is a part of prompt_tokens. */
  prompt_tokens_details?: { cached_tokens?: number | null } | null;
  /** reasoning_tokens is a part of completion_tokens. */
  completion_tokens_details?: { reasoning_tokens?: number | null } | null;
}

export interface OpenAIChatResponse {
  id?: string;
  model?: string;
  choices?: Array<{
    index?: number;
    message?: { content?: string | null; refusal?: string | null; tool_calls?: OpenAIToolCall[] | null };
    finish_reason?: string | null;
  }>;
  usage?: OpenAIUsage | null;
}

export interface OpenAIChatChunk {
  choices?: Array<{
    index?: number;
    delta?: {
      content?: string | null;
      refusal?: string | null;
      tool_calls?: Array<{ index?: number; id?: string; function?: { name?: string; arguments?: string } }> | null;
    };
    finish_reason?: string | null;
  }>;
  usage?: OpenAIUsage | null;
  error?: { message?: string; type?: string; code?: string | null };
}

export interface OpenAIEmbeddingRequest {
  model?: string;
  input: string[];
  encoding_format: 'float';
  dimensions?: number;
  user?: string;
}

export interface OpenAIEmbeddingResponse {
  data?: Array<{ index?: number; embedding?: number[] }>;
  usage?: { prompt_tokens?: number };
}

export interface OpenAIErrorBody {
  error?: { message?: string; type?: string; code?: string | number | null; param?: string | null } | string;
}
