/**
 * `npm run bench [-- <suite>]`: `mesh` (default) the mesh's own figures (hops, unary, streaming,
 * memory, monolith, quota); `peer` the mesh beside Portkey's gateway under one load generator;
 * `soak` ten minutes at a steady rate, memory growth and money checked at the end; `profile`
 * CPU profiles of the six services under load, summarised; `router` the router's decision alone, in process;
 * `hedge` a route with a 10%-slow primary, without and with hedging; `policy` the edge's content-policy scan of a 2,000-token prompt;
 * `cache` the response cache's lookup on a miss and a hit, and executeChat with and without it.
 */
const SUITES: Record<string, () => Promise<unknown>> = {
  mesh: () => import('./suite.js'),
  peer: () => import('./peer.js'),
  soak: () => import('./soak.js'),
  profile: () => import('./profile.js'),
  mux: () => import('./mux.js'),
  router: () => import('./router-bench.js'),
  hedge: () => import('./hedge.js'),
  policy: () => import('./policy-bench.js'),
  cache: () => import('./cache-bench.js'),
};
const name = process.argv[2] ?? 'mesh';
const suite = SUITES[name];
if (!suite) {
  process.stderr.write(`bench: unknown suite ${JSON.stringify(name.slice(0, 40))}; one of ${Object.keys(SUITES).join(', ')}\n`);
  process.exit(2);
}
await suite();
