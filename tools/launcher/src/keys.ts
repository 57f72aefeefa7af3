import { hashKey } from '@llmgw/auth';
import { isMistypedKey, newApiKey } from '@llmgw/caller-auth';

/**
 * `npm run -s keys -- new`: a fresh bootstrap key (to hand its holder) and the `key_sha256` to put
 * in the config's api_keys instead of the key, as the production profile requires.
 * `printf %s "$KEY" | npm run -s keys -- digest`: the key_sha256 of an existing key, read from
 * stdin (not the command line, which `ps` and shell history would show). Trailing newlines are
 * dropped; the key itself is never printed by `digest`.
 */
export function digestOf(input: string): string {
  const key = input.replace(/[\r\n]+$/, '');
  if (key.length < 16) throw new Error('a key has at least 16 characters (api_keys[].key)');
  if (isMistypedKey(key)) throw new Error('this llmgw_ key fails its checksum: mistyped or truncated');
  return hashKey(key);
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(chunks).toString('utf8');
}

async function main(cmd: string | undefined): Promise<void> {
  if (cmd === 'new') {
    const key = newApiKey();
    process.stdout.write(`key (give it to its holder; shown once): ${key}\nconfig: key_sha256: ${hashKey(key)}\n`);
    return;
  }
  if (cmd === 'digest') {
    if (process.stdin.isTTY) throw new Error('pipe the key on stdin: printf %s "$KEY" | npm run -s keys -- digest');
    process.stdout.write(`${digestOf(await readStdin())}\n`);
    return;
  }
  throw new Error('usage: npm run -s keys -- new | digest (key on stdin)');
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/\\/g, '/'))) {
  main(process.argv[2]).catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
