import { runServiceMain } from '@llmgw/runtime';
import { startAuth } from './index.js';

await runServiceMain({ name: 'auth', start: startAuth, needsRedis: true });
