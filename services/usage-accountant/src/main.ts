import { runServiceMain } from '@llmgw/runtime';
import { usageAccountantService } from './index.js';

await runServiceMain(usageAccountantService);
