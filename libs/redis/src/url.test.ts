import { describe, expect, it } from 'vitest';
import { parseRedisUrl, safeRedisUrl, type RedisTarget } from './index.js';

describe('REDIS_URL', () => {
  it.each<[string, RedisTarget]>([
    ['redis://quota:pw@127.0.0.1:6379', { kind: 'single', url: 'redis://quota:pw@127.0.0.1:6379' }],
    ['rediss://r.example:6380/0', { kind: 'single', url: 'rediss://r.example:6380/0' }],
    [
      'redis-cluster://quota:p%40ss%3Aword@10.0.0.1:7000,10.0.0.2:7001,r3.example',
      {
        kind: 'cluster',
        username: 'quota',
        password: 'p@ss:word',
        nodes: [
          { host: '10.0.0.1', port: 7000 },
          { host: '10.0.0.2', port: 7001 },
          { host: 'r3.example', port: 6379 },
        ],
      },
    ],
    ['redis-cluster://[::1]:7000/', { kind: 'cluster', nodes: [{ host: '::1', port: 7000 }] }],
    ['redis-cluster://:only-a-password@h:1', { kind: 'cluster', password: 'only-a-password', nodes: [{ host: 'h', port: 1 }] }],
  ])('%s', (url, target) => {
    expect(parseRedisUrl(url)).toEqual(target);
  });

  it.each([
    ['http://r:6379', 'unknown scheme http:'],
    ['not a url', 'not a URL'],
    ['redis-cluster://u:secret@', 'host:port pairs'],
    ['redis-cluster://u:secret@h1:7000,', 'bad cluster node ""'],
    ['redis-cluster://u:secret@h1:70000', 'bad cluster node "h1:70000"'],
    ['redis-cluster://u:secret@h1:7000/0', 'nothing after them'],
    ['redis-cluster://u:%E0%A4%A@h1:7000', 'percent-encoding'],
  ])('refuses %s without showing its password', (url, message) => {
    expect(() => parseRedisUrl(url)).toThrow(message);
    try {
      parseRedisUrl(url);
    } catch (err) {
      expect(String(err)).not.toContain('secret');
    }
  });

  it.each([
    ['redis://quota:pw@127.0.0.1:6379', 'redis://quota:***@127.0.0.1:6379'],
    ['redis-cluster://quota:pw@h1:7000,[::1]:7001', 'redis-cluster://quota:***@h1:7000,[::1]:7001'],
    ['redis-cluster://quota@h1:7000', 'redis-cluster://quota@h1:7000'],
    ['redis-cluster://h1:7000', 'redis-cluster://h1:7000'],
    ['redis-cluster://u:pw@h1:bad', '<unparseable redis url>'],
  ])('logs %s as %s', (url, shown) => {
    expect(safeRedisUrl(url)).toBe(shown);
  });
});
