import { runServiceMain } from '@llmgw/runtime';
import { startEdge } from './index.js';

await runServiceMain({ name: 'edge', start: (deps) => startEdge(deps), needsRedis: false });
