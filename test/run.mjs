// The project's test runner: uvu's own command line (`node --import tsx test/run.mjs DIR
// PATTERN`), with uvu loaded so that a failing `before` hook fails its suite (test/uvu-hooks.mjs).
import { createRequire, register } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

register('./uvu-hooks.mjs', import.meta.url);
// The package root, from its main entry (uvu exports neither bin.js nor package.json).
const uvu = dirname(dirname(createRequire(import.meta.url).resolve('uvu')));
await import(pathToFileURL(join(uvu, 'bin.js')).href);
