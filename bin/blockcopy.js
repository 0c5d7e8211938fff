#!/usr/bin/env node
// The blockcopy command: runs the compiled CLI from dist/ (built by `npm run build`, and by
// `prepack` before `npm pack`/`npm publish`). Development runs the sources: `npm run blockcopy`.
try {
  await import('../dist/src/cli/run.js');
} catch (e) {
  if (e?.code !== 'ERR_MODULE_NOT_FOUND' || !String(e.message).includes('/dist/src/cli/run.js')) throw e;
  process.stderr.write('blockcopy: dist/ is not built; run `npm run build` (or `npm run blockcopy -- ARGS`)\n');
  process.exit(2);
}
