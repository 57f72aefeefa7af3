import { runServiceMain } from '@llmgw/runtime';
import { providerExecutorService } from './index.js';

await runServiceMain(providerExecutorService);
