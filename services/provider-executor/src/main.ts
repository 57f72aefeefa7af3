import { runServiceMain } from '@llmgw/runtime';
import { startProviderExecutor } from './index.js';

await runServiceMain({ name: 'provider-executor', start: startProviderExecutor, needsRedis: false });
