import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigWatcher, type EdgeSections } from '@llmgw/config';
import { silentLogger } from '@llmgw/logging';
import { ChatRequest, Role } from '@llmgw/proto/v1';
import { STICKY_BUCKETS, stickyBucket } from '@llmgw/sticky';
import { describe, expect, it } from 'vitest';
import { applyTemplate, refuseChangedVersions, rolloutVersion } from './templates.js';
import { edgeTestSections, TEST_CONFIG_YAML } from './test-config.js';

const templates = edgeTestSections().templates;
const answer = templates.answer!;

/** The version a request naming none gets, as its prompt version says. */
function versionFor(user: string): string {
  const req = ChatRequest.fromPartial({ template: 'answer', templateVariables: {}, messages: [{ role: Role.ROLE_USER, content: 'hi' }] });
  const t = { answer: { ...answer, versions: Object.fromEntries(Object.keys(answer.versions).map((v) => [v, { system: 'x', variables: [], defaults: {} }])) } };
  applyTemplate(req, t, user, '');
  return req.promptVersion;
}

describe('template rollout', () => {
  it('gives buckets to the arms by share, the rest to the pinned version', () => {
    expect(rolloutVersion(answer, 0)).toBe('v2');
    expect(rolloutVersion(answer, 0.1 * STICKY_BUCKETS - 1)).toBe('v2');
    expect(rolloutVersion(answer, 0.1 * STICKY_BUCKETS)).toBe('v3');
    expect(rolloutVersion(answer, 0.3 * STICKY_BUCKETS - 1)).toBe('v3');
    expect(rolloutVersion(answer, 0.3 * STICKY_BUCKETS)).toBe('v1');
    expect(rolloutVersion(answer, STICKY_BUCKETS - 1)).toBe('v1');
  });

  it('gives 10,000 distinct users each version within 2% of its share', () => {
    const counts: Record<string, number> = {};
    for (let i = 0; i < 10_000; i++) {
      const v = versionFor(`user-${i}`);
      counts[v] = (counts[v] ?? 0) + 1;
    }
    expect(Math.abs((counts['answer@v2'] ?? 0) / 10_000 - 0.1)).toBeLessThan(0.02);
    expect(Math.abs((counts['answer@v3'] ?? 0) / 10_000 - 0.2)).toBeLessThan(0.02);
    expect(Math.abs((counts['answer@v1'] ?? 0) / 10_000 - 0.7)).toBeLessThan(0.02);
  });

  it('sticks: one user always gets the same version', () => {
    for (let i = 0; i < 50; i++) {
      const first = versionFor(`sticky-${i}`);
      for (let j = 0; j < 5; j++) expect(versionFor(`sticky-${i}`)).toBe(first);
    }
  });

  it("is salted by the template's name: a user's version does not follow their bucket of a route's split", () => {
    const inSplitHead = Array.from({ length: 2_000 }, (_, i) => `u${i}`).filter((u) => stickyBucket(u) < 0.1 * STICKY_BUCKETS);
    const v2 = inSplitHead.filter((u) => versionFor(u) === 'answer@v2').length;
    // Independent: about 10% of the split's head get v2, not all of them.
    expect(v2 / inSplitHead.length).toBeLessThan(0.3);
  });
});

describe('immutable template versions', () => {
  const changedV2 = TEST_CONFIG_YAML.replace('customers on {{plan}}.', 'customers on the {{plan}} plan.');

  it('refuses sections that change a version held, naming it; adding a version passes', () => {
    const current = edgeTestSections().templates;
    expect(() => refuseChangedVersions(current, edgeTestSections(changedV2))).toThrow('template versions are immutable: answer@v2 changed; add a new version instead');
    const added = edgeTestSections(TEST_CONFIG_YAML.replace('      v3: {', '      v4: { system: New. }\n      v3: {'));
    expect(refuseChangedVersions(current, added).templates.answer?.versions.v4?.system).toBe('New.');
  });

  it('a reload that edits a version keeps the previous sections, with an error line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'llmgw-templates-'));
    try {
      const path = join(dir, 'gateway.yaml');
      writeFileSync(path, TEST_CONFIG_YAML);
      const errors: string[] = [];
      const logger = { ...silentLogger(), error: (_o: object, msg: string) => void errors.push(msg) };
      const w: ConfigWatcher<EdgeSections> = new ConfigWatcher<EdgeSections>(edgeTestSections(), {
        path,
        parse: (text) => refuseChangedVersions(w.current.templates, edgeTestSections(text)),
        logger,
      });
      writeFileSync(path, changedV2);
      expect(await w.reload()).toBe(false);
      expect(w.current.templates.answer?.versions.v2?.system).toBe('You help {{product}} customers on {{plan}}.');
      expect(errors.join('\n')).toContain('answer@v2 changed');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
