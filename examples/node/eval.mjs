// Evaluates the test vectors against a SARK bundle in Node.js, through the bundle's WIT
// exports, after turning the component into JavaScript with jco.
// Run: npm ci && node eval.mjs <bundle.wasm> <vectors.json>
// Prints one JSON line per vector: {"result": v} | {} (undefined) | {"error": "<kind>"},
// then the median latency of the first vector as {"median_us": …} on stderr.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const [bundlePath, vectorsPath] = process.argv.slice(2);
if (!bundlePath || !vectorsPath) {
  console.error('usage: node eval.mjs <bundle.wasm> <vectors.json>');
  process.exit(2);
}

// Transpile once per bundle content.
const bytes = readFileSync(bundlePath);
const digest = createHash('sha256').update(bytes).digest('hex').slice(0, 16);
const outDir = join(here, 'build', digest);
if (!existsSync(join(outDir, 'bundle.js'))) {
  execFileSync(join(here, 'node_modules', '.bin', 'jco'),
    ['transpile', resolve(bundlePath), '-o', outDir, '--name', 'bundle', '-q'],
    { stdio: 'inherit' });
}
const { evaluator } = await import(pathToFileURL(join(outDir, 'bundle.js')).href);

function run(entrypoint, inputJson) {
  try {
    const value = evaluator.evaluate(entrypoint, inputJson);
    return value === undefined ? {} : { result: JSON.parse(value) };
  } catch (e) {
    // A WIT error variant arrives as a ComponentError whose payload is {tag, val}.
    if (e && e.payload && typeof e.payload.tag === 'string') return { error: e.payload.tag };
    throw e;
  }
}

const vectors = JSON.parse(readFileSync(vectorsPath, 'utf8'));
for (const v of vectors) {
  const input = v.raw_input ?? JSON.stringify(v.input);
  console.log(JSON.stringify(run(v.entrypoint, input)));
}

// Latency of the first vector, for the comparison with `sark bench`.
const first = vectors[0];
const input = JSON.stringify(first.input);
for (let i = 0; i < 200; i++) run(first.entrypoint, input);
const samples = [];
const until = Date.now() + 2000;
while (Date.now() < until) {
  const t = process.hrtime.bigint();
  run(first.entrypoint, input);
  samples.push(Number(process.hrtime.bigint() - t) / 1000);
}
samples.sort((a, b) => a - b);
console.error(JSON.stringify({ median_us: samples[samples.length >> 1], samples: samples.length }));
