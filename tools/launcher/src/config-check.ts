import { DEFAULT_CONFIG_PATH } from '@llmgw/runtime';
import { checkWholeConfig } from './whole-config.js';

/**
 * `npm run config:check [-- path]`: checks the whole config file (default GATEWAY_CONFIG, else
 * config/gateway.yaml) with the environment of this shell. Prints "config ok: <path>", or every
 * problem on its own line and exits 1.
 */
const path = process.argv[2] || process.env.GATEWAY_CONFIG || DEFAULT_CONFIG_PATH;
const result = checkWholeConfig(path, process.env);
if (result.ok) {
  process.stdout.write(`config ok: ${path}\n`);
} else {
  process.stderr.write(`invalid config ${result.source}: ${result.problems.length} problem${result.problems.length === 1 ? '' : 's'}\n`);
  for (const p of result.problems) process.stderr.write(`  ${p}\n`);
  process.exitCode = 1;
}
