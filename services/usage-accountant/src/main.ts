import { runServiceMain } from '@llmgw/runtime';
import { startUsageAccountant } from './index.js';

await runServiceMain({ name: 'usage-accountant', start: startUsageAccountant, needsRedis: true });
