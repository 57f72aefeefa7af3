import { existsSync } from 'node:fs';
import { join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** How a program runs: its bundle from `npm run build` (dist/), or its TypeScript through tsx. */
export type ProgramRuntime = 'dist' | 'src';

/**
 * LLMGW_RUN_FROM chooses; unset, a built program starts built programs and source starts source,
 * so `npm start` runs plain JavaScript throughout and a test run from source stays in source.
 */
export function programRuntime(env: NodeJS.ProcessEnv = process.env): ProgramRuntime {
  const chosen = env.LLMGW_RUN_FROM;
  if (chosen === 'dist' || chosen === 'src') return chosen;
  if (chosen) throw new Error(`LLMGW_RUN_FROM: expected "dist" or "src", got ${JSON.stringify(chosen.slice(0, 40))}`);
  return fileURLToPath(import.meta.url).startsWith(join(REPO_ROOT, 'dist', sep)) ? 'dist' : 'src';
}

/**
 * Node's arguments that run one program, named by its source (`services/quota/src/main.ts`);
 * its bundle is `dist/services/quota/main.js`.
 */
export function programArgs(source: string, runtime: ProgramRuntime = programRuntime()): string[] {
  if (runtime === 'src') return ['--import', 'tsx', join(REPO_ROOT, source)];
  const bundle = join(REPO_ROOT, 'dist', source.replace('/src/', '/').replace(/\.ts$/, '.js'));
  if (!existsSync(bundle)) throw new Error(`${bundle} is missing: run npm run build (or set LLMGW_RUN_FROM=src)`);
  return [bundle];
}
