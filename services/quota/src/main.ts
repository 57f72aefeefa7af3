import { runServiceMain } from '@llmgw/runtime';
import { quotaService } from './index.js';

await runServiceMain(quotaService);
