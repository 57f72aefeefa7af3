import { runServiceMain } from '@llmgw/runtime';
import { authService } from './index.js';

await runServiceMain(authService);
