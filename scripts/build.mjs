// `npm run build`: one ES module bundle per program into dist/, the plain JavaScript that
// `npm start`, the image and Kubernetes run (tsx is for development and tests only).
// Our workspace code is bundled; packages from the registry stay imports, installed per service
// as production dependencies. dist/<group>/<package>/<file>.js sits as deep as
// <group>/<package>/src/<file>.ts, so paths taken from import.meta.url (proto/, the repo root) hold in both.
import { build } from 'esbuild';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const SERVICES = ['auth', 'edge', 'provider-executor', 'quota', 'router', 'usage-accountant'];
const entryPoints = [
  ...SERVICES.map((s) => ({ in: `services/${s}/src/main.ts`, out: `services/${s}/main` })),
  { in: 'services/usage-accountant/src/replay-main.ts', out: 'services/usage-accountant/replay-main' },
  ...['main', 'chat', 'config-check', 'keys'].map((f) => ({ in: `tools/launcher/src/${f}.ts`, out: `tools/launcher/${f}` })),
  { in: 'tools/provider-simulator/src/main.ts', out: 'tools/provider-simulator/main' },
];

/** Registry packages are resolved by Node at run time; only @llmgw/* is ours to bundle. */
const externalPackages = {
  name: 'external-packages',
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (args) => (args.path.startsWith('@llmgw/') ? undefined : { path: args.path, external: true }));
  },
};

const started = Date.now();
const result = await build({
  absWorkingDir: root,
  entryPoints,
  outdir: 'dist',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: 'linked',
  plugins: [externalPackages],
  metafile: true,
  logLevel: 'warning',
});
writeFileSync(`${root}/dist/package.json`, '{ "type": "module" }\n');
writeFileSync(`${root}/dist/meta.json`, JSON.stringify(result.metafile));
if (!process.argv.includes('--quiet')) {
  process.stdout.write(`build: ${entryPoints.length} bundles in dist/ (${Date.now() - started} ms)\n`);
}
