import { runServiceMain } from '@llmgw/runtime';
import { startRouter } from './index.js';

await runServiceMain({ name: 'router', start: startRouter, needsRedis: false });
