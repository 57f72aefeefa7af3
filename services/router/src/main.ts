import { runServiceMain } from '@llmgw/runtime';
import { routerService } from './index.js';

await runServiceMain(routerService);
