/**
 * Builds a small, deterministic value that satisfies a JSON schema well enough for tests:
 * objects get their required properties (or all properties when `required` is absent),
 * strings become "example" (or the first enum value), numbers 1, booleans true, arrays one item.
 * Gemini's OpenAPI-style upper-case types (`OBJECT`, `STRING`) are accepted too.
 */
export function sampleFromSchema(schema: unknown, depth = 0): unknown {
  if (!isRecord(schema) || depth > 8) return {};
  if ('const' in schema) return schema['const'];
  const enumValues = schema['enum'];
  if (Array.isArray(enumValues) && enumValues.length > 0) return enumValues[0];
  if ('default' in schema && schema['default'] !== undefined) return schema['default'];
  for (const key of ['anyOf', 'oneOf', 'allOf'] as const) {
    const options = schema[key];
    if (Array.isArray(options)) {
      const first = options.find((o) => !(isRecord(o) && o['type'] === 'null'));
      if (first !== undefined) return sampleFromSchema(first, depth + 1);
    }
  }
  switch (schemaType(schema)) {
    case 'object':
      return sampleObject(schema, depth);
    case 'array':
      return [sampleFromSchema(schema['items'] ?? { type: 'string' }, depth + 1)];
    case 'string':
      return 'example';
    case 'integer':
    case 'number':
      return typeof schema['minimum'] === 'number' ? schema['minimum'] : 1;
    case 'boolean':
      return true;
    case 'null':
      return null;
    default:
      return isRecord(schema['properties']) ? sampleObject(schema, depth) : 'example';
  }
}

function sampleObject(schema: Record<string, unknown>, depth: number): Record<string, unknown> {
  const props = isRecord(schema['properties']) ? schema['properties'] : {};
  const required = schema['required'];
  const keys = Array.isArray(required)
    ? required.filter((k): k is string => typeof k === 'string')
    : Object.keys(props);
  const out: Record<string, unknown> = {};
  for (const key of keys) out[key] = sampleFromSchema(props[key] ?? { type: 'string' }, depth + 1);
  return out;
}

function schemaType(schema: Record<string, unknown>): string | undefined {
  const t = schema['type'];
  if (typeof t === 'string') return t.toLowerCase();
  if (Array.isArray(t)) {
    const first = t.find((x) => typeof x === 'string' && x.toLowerCase() !== 'null');
    return typeof first === 'string' ? first.toLowerCase() : undefined;
  }
  return undefined;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
