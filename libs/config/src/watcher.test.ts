import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigWatcher, parseSections, quotaSectionsSchema, type QuotaSections } from './index.js';

function recordingLogger() {
  const lines: { level: string; msg: string }[] = [];
  return {
    lines,
    info: (_obj: object, msg: string) => lines.push({ level: 'info', msg }),
    error: (_obj: object, msg: string) => lines.push({ level: 'error', msg }),
  };
}

const yaml = (rpm: number, extraTenant = '') => `
tiers: { startup: { limits: { requests_per_minute: ${rpm} } } }
tenants:
  acme: { tier: startup }
${extraTenant}
`;

describe('ConfigWatcher', () => {
  let dir: string;
  let path: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'llmgw-watch-'));
    path = join(dir, 'gateway.yaml');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const parse = (text: string, source: string) => parseSections(quotaSectionsSchema, text, source, {});

  it('swaps on a valid change, keeps the old value on a bad one with one error line, skips unchanged text', async () => {
    writeFileSync(path, yaml(10));
    const logger = recordingLogger();
    const seen: QuotaSections[] = [];
    const w = new ConfigWatcher(parse(yaml(10), path), { path, parse, logger, onChange: (next) => seen.push(next) });
    expect(w.current.tiers.startup?.limits.requests_per_minute).toBe(10);

    writeFileSync(path, yaml(5, '  globex: { tier: startup }'));
    expect(await w.reload()).toBe(true);
    expect(w.current.tiers.startup?.limits.requests_per_minute).toBe(5);
    expect(Object.keys(w.current.tenants)).toEqual(['acme', 'globex']);
    expect(seen).toHaveLength(1);
    expect(await w.reload()).toBe(false); // same text

    writeFileSync(path, yaml(5, '  initech: { tier: platinum }'));
    expect(await w.reload()).toBe(false);
    expect(Object.keys(w.current.tenants)).toEqual(['acme', 'globex']);
    const errors = logger.lines.filter((l) => l.level === 'error');
    expect(errors).toHaveLength(1);
    expect(errors[0]!.msg).toContain('tenants.initech.tier: unknown tier "platinum"');

    rmSync(path);
    expect(await w.reload()).toBe(false);
    expect(w.current.tiers.startup?.limits.requests_per_minute).toBe(5);
    expect(seen).toHaveLength(1);
  });

  it('polls the file once started, and stops', async () => {
    writeFileSync(path, yaml(10));
    const logger = recordingLogger();
    const w = new ConfigWatcher(parse(yaml(10), path), { path, parse, logger, intervalMs: 20 });
    w.start();
    try {
      // mtime granularity: make sure the change is seen as one
      await new Promise((r) => setTimeout(r, 30));
      writeFileSync(path, yaml(3));
      const deadline = Date.now() + 3_000;
      while (w.current.tiers.startup?.limits.requests_per_minute !== 3) {
        if (Date.now() > deadline) throw new Error('change not picked up');
        await new Promise((r) => setTimeout(r, 10));
      }
    } finally {
      w.stop();
    }
    writeFileSync(path, yaml(7, '  x: { tier: startup }'));
    await new Promise((r) => setTimeout(r, 100));
    expect(w.current.tiers.startup?.limits.requests_per_minute).toBe(3);
  });

  it('concurrent reloads apply in order', async () => {
    writeFileSync(path, yaml(1));
    const w = new ConfigWatcher(parse(yaml(1), path), { path, parse, logger: recordingLogger() });
    writeFileSync(path, yaml(2));
    const [a, b] = await Promise.all([w.reload(), w.reload()]);
    expect([a, b]).toEqual([true, false]);
    expect(w.current.tiers.startup?.limits.requests_per_minute).toBe(2);
  });
});
