import { runServiceMain } from '@llmgw/runtime';
import { edgeService } from './index.js';

await runServiceMain(edgeService);
