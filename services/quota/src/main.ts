import { runServiceMain } from '@llmgw/runtime';
import { startQuota } from './index.js';

await runServiceMain({ name: 'quota', start: startQuota, needsRedis: true });
