#!/usr/bin/env node
// The host ships as TypeScript run through tsx's loader (no build step yet), so the bin registers the loader first.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
