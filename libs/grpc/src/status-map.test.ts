import { Metadata, status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { AppError, MAX_ECHOED_CHARS, MAX_ERROR_MESSAGE_CHARS, quoted, type ErrorKind } from '@llmgw/errors';
import { pino } from 'pino';
import { fromServiceError, toStatusObject } from './status-map.js';

function capturingLogger() {
  const lines: string[] = [];
  const logger = pino({ level: 'info' }, { write: (l: string) => lines.push(l) });
  return { logger, lines };
}

describe('status mapping', () => {
  it.each<[ErrorKind, status]>([
    ['invalid_argument', status.INVALID_ARGUMENT],
    ['unauthenticated', status.UNAUTHENTICATED],
    ['permission_denied', status.PERMISSION_DENIED],
    ['resource_exhausted', status.RESOURCE_EXHAUSTED],
    ['unavailable', status.UNAVAILABLE],
    ['deadline_exceeded', status.DEADLINE_EXCEEDED],
  ])('maps %s to gRPC code %i with the message intact', (kind, code) => {
    const st = toStatusObject(new AppError(kind, 'field: what was wrong'), capturingLogger().logger);
    expect(st.code).toBe(code);
    expect(st.details).toBe('field: what was wrong');
  });

  it('puts retry-after-ms and extra trailers in the metadata', () => {
    const st = toStatusObject(
      new AppError('resource_exhausted', 'slow down', { retryAfterMs: 1234.2, trailers: { 'x-ratelimit-limit': '120' } }),
      capturingLogger().logger,
    );
    expect(st.metadata?.get('retry-after-ms')).toEqual(['1235']);
    expect(st.metadata?.get('x-ratelimit-limit')).toEqual(['120']);
  });

  it('never shows the caller the text of an unexpected error, but logs it', () => {
    const { logger, lines } = capturingLogger();
    const st = toStatusObject(new Error('redis password is hunter2'), logger);
    expect(st).toMatchObject({ code: status.INTERNAL, details: 'internal error' });
    expect(lines.join('')).toContain('hunter2');
  });

  it('turns a remote status back into an AppError with its retry-after', () => {
    const md = new Metadata();
    md.set('retry-after-ms', '500');
    md.set('x-ratelimit-remaining', '0');
    const err = Object.assign(new Error('8 RESOURCE_EXHAUSTED: over'), { code: status.RESOURCE_EXHAUSTED, details: 'over', metadata: md });
    const app = fromServiceError(err);
    expect(app).toMatchObject({ kind: 'resource_exhausted', message: 'over' });
    expect(app.opts.retryAfterMs).toBe(500);
    expect(app.opts.trailers).toEqual({ 'x-ratelimit-remaining': '0' });
  });
});

describe('caller-supplied values in errors', () => {
  it('quotes short values whole and cuts long ones, naming what was left out', () => {
    expect(quoted('support-chat')).toBe('"support-chat"');
    expect(quoted('x'.repeat(MAX_ECHOED_CHARS + 10))).toBe(`"${'x'.repeat(MAX_ECHOED_CHARS)}"… (10 more characters)`);
  });

  it('never sends the caller a message longer than MAX_ERROR_MESSAGE_CHARS', () => {
    const s = toStatusObject(new AppError('invalid_argument', 'y'.repeat(50_000)), capturingLogger().logger);
    expect(s.details?.length).toBe(MAX_ERROR_MESSAGE_CHARS + 1);
    expect(s.code).toBe(status.INVALID_ARGUMENT);
  });
});
