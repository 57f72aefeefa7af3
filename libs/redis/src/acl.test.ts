import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { REDIS_ACL, REDIS_USERS, redisAclFile, redisAclRules, type RedisUserName } from './index.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));

/** ioredis methods that are not Redis commands. */
const CLIENT_METHODS = new Set(['defineCommand', 'duplicate', 'on', 'off', 'once', 'connect', 'disconnect', 'quit', 'status']);

/**
 * The Redis commands a service's code sends, read from its source (not tests): client calls
 * (`redis.x(`, `this.redis.x(`, a MULTI's `tx.x(`), its defineCommand scripts (EVALSHA, EVAL on
 * a cold cache) and every command inside their Lua.
 */
function commandsInCode(service: RedisUserName): string[] {
  const dir = join(REPO, 'services', service, 'src');
  const code = readdirSync(dir)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && !f.startsWith('test-') && !f.startsWith('memory-'))
    .map((f) => readFileSync(join(dir, f), 'utf8'))
    .join('\n');
  const scripts = new Set([...code.matchAll(/defineCommand\('(\w+)'/g)].map((m) => m[1]!));
  const out = new Set<string>();
  for (const m of code.matchAll(/\b(?:redis|tx)\??\.(\w+)\(/g)) {
    const method = m[1]!;
    // `redis.call(` is Lua's (its commands are read below).
    if (CLIENT_METHODS.has(method) || method === 'call') continue;
    if (scripts.has(method)) out.add('evalsha').add('eval');
    else out.add(method.toLowerCase());
  }
  if (scripts.size > 0) out.add('evalsha').add('eval');
  for (const m of code.matchAll(/redis\.call\('(\w+)'/g)) out.add(m[1]!.toLowerCase());
  if (/\.multi\(\)/.test(code)) out.add('exec');
  // Every client: the health watch's PING, ioredis's ready check (INFO); on a cluster its slot map and ready check.
  return [...out, 'ping', 'info', 'cluster|slots', 'cluster|info'].filter((c, i, all) => all.indexOf(c) === i).sort();
}

describe('Redis ACL users', () => {
  it.each(REDIS_USERS)('allow %s exactly the commands its code sends, its scripts included', (user) => {
    expect([...REDIS_ACL[user].commands].sort()).toEqual(commandsInCode(user));
  });

  it('give no user a dangerous command, and no two users overlapping key prefixes', () => {
    const dangerous = ['flushall', 'flushdb', 'config', 'keys', 'debug', 'shutdown', 'acl', 'monitor', 'script', 'save', 'bgsave', 'replicaof', 'module', 'client', 'migrate', 'swapdb'];
    for (const u of REDIS_USERS) expect(REDIS_ACL[u].commands.filter((c) => dangerous.includes(c))).toEqual([]);
    const prefixes = REDIS_USERS.flatMap((u) => REDIS_ACL[u].keyPrefixes.map((p) => ({ u, p })));
    for (const a of prefixes) for (const b of prefixes) if (a.u !== b.u) expect(a.p.startsWith(b.p), `${a.p} inside ${b.p}`).toBe(false);
  });

  it('render ACL SETUSER rules that start from nothing and hold only the password hash', () => {
    const rules = redisAclRules('auth', 'hunter2');
    expect(rules.slice(0, 7)).toEqual(['reset', 'on', `#${createHash('sha256').update('hunter2').digest('hex')}`, '~auth:*', 'resetchannels', '-@all', '+ping']);
    expect(rules.join(' ')).not.toContain('hunter2');
  });

  it('render an aclfile with default off, the admin and every service', () => {
    const file = redisAclFile({ auth: 'a', quota: 'q', 'provider-executor': 'e', 'usage-accountant': 'u', admin: 'x' });
    const lines = file.trimEnd().split('\n');
    expect(lines[0]).toBe('user default off ~* &* +@all');
    expect(lines[1]).toMatch(/^user admin on #[0-9a-f]{64} ~\* &\* \+@all$/);
    expect(lines.slice(2).map((l) => l.split(' ')[1])).toEqual(['auth', 'quota', 'provider-executor', 'usage-accountant']);
    expect(lines[3]).toContain(' ~llmgw:quota:* ');
    expect(lines[4]).toContain(' ~llmgw:cache:* ');
    expect(lines[5]).toContain(' ~usage:* ');
  });
});
