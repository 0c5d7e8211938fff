#!/usr/bin/env node
// The blockcopy command: runs the TypeScript sources through tsx (no build step needed).
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/run.ts');
