// wgpu-xent against TensorFlow.js's WebGPU backend in headless Chromium (bench.html): prints a
// table of median ms. Run after examples/web/build.sh and `npm install` (TF.js is a dev
// dependency), from examples/web:
//   node bench.mjs [1024x32000,8192x4096] [iterations]
import { runPage } from './browser.mjs';

try {
  const shapes = process.argv[2] || '1024x32000,8192x4096';
  const iters = process.argv[3] || '3';
  const r = await runPage(`bench.html?shapes=${shapes}&iters=${iters}`, { timeout: 3600000 });
  if (r.error) throw new Error(r.error);
  console.log(`TF.js backend: ${r.backend}`);
  console.log('| op | shape | wgpu-xent ms | TF.js ms | TF.js / wgpu-xent |');
  console.log('|---|---|---|---|---|');
  for (const x of r.results) {
    console.log(`| ${x.op} | ${x.n}×${x.c} | ${x.xent_ms.toFixed(0)} | ${x.tfjs_ms.toFixed(0)} | ${(x.tfjs_ms / x.xent_ms).toFixed(1)} |`);
  }
} catch (e) {
  console.error(`FAIL: ${e}`);
  process.exitCode = 1;
}
