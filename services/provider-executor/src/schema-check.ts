import { Ajv, type ValidateFunction } from 'ajv';
import { AppError } from '@llmgw/errors';

/** Compiled schemas by their JSON text: a route's callers send the same few schemas again and again. */
const MAX_COMPILED = 256;
const MAX_PROBLEM_CHARS = 300;

const ajv = new Ajv({ strict: false, allErrors: false });
const compiled = new Map<string, ValidateFunction>();

/**
 * The validator of a json_schema response format: undefined for a valid answer, else what is
 * wrong, bounded. A schema ajv cannot compile is the caller's mistake: INVALID_ARGUMENT, before
 * any provider is called.
 */
export function answerCheck(schema: Record<string, unknown>): (answer: string) => string | undefined {
  const key = JSON.stringify(schema);
  let validate = compiled.get(key);
  if (!validate) {
    try {
      validate = ajv.compile(schema);
    } catch (err) {
      throw new AppError('invalid_argument', `response_format.json_schema: not a usable JSON Schema: ${clip((err as Error).message)}`);
    }
    if (compiled.size >= MAX_COMPILED) compiled.delete(compiled.keys().next().value as string);
    compiled.set(key, validate);
  }
  const check = validate;
  return (answer) => {
    let value: unknown;
    try {
      value = JSON.parse(answer);
    } catch {
      return 'the answer is not JSON';
    }
    return check(value) ? undefined : clip(ajv.errorsText(check.errors, { dataVar: 'answer' }));
  };
}

function clip(s: string): string {
  return s.length > MAX_PROBLEM_CHARS ? `${s.slice(0, MAX_PROBLEM_CHARS)}…` : s;
}
