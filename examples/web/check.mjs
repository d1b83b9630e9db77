// The demo page's check: opens examples/web/ in headless Chromium with WebGPU, waits for the
// page to finish, and asserts that training ran, that the loss fell, that the GPU and the CPU
// reference agree, and that the benchmark ran. Saves a screenshot. Run after
// examples/web/build.sh, from examples/web (npm install first):
//   node check.mjs [screenshot.png]
import { runPage } from './browser.mjs';

const fail = message => { console.error(`FAIL: ${message}`); process.exitCode = 1; };
try {
  const r = await runPage('', { screenshot: process.argv[2] || 'screenshot.png' });
  if (r.error) {
    fail(`the page failed: ${r.error}`);
  } else {
    const { gpu, max_diff, accuracy } = r.train;
    const adapter = r.adapter;
    console.log(`adapter: ${adapter}; loss ${gpu[0].toFixed(4)} -> ${gpu[gpu.length - 1].toFixed(4)}` +
                ` over ${gpu.length} steps; accuracy ${accuracy}; |GPU - CPU| <= ${max_diff.toExponential(2)}`);
    for (const row of r.bench.rows) console.log(`bench: ${row.op} ${row.n}x${row.c}: ${row.median_ms.toFixed(1)} ms`);
    if (gpu.length !== 60) fail(`trained ${gpu.length} steps, not 60`);
    if (!adapter || adapter.startsWith('no WebGPU')) fail(`no adapter: ${adapter}`);
    if (!(gpu[gpu.length - 1] < 0.5 * gpu[0])) fail('the loss did not fall by half');
    if (!(max_diff < 1e-4)) fail(`GPU and CPU differ by ${max_diff}`);
    if (!(accuracy > 0.8)) fail(`accuracy ${accuracy}`);
    if (r.bench.rows.length !== 3 || !r.bench.rows.every(x => x.median_ms > 0)) fail('the benchmark did not run');
  }
} catch (e) {
  fail(String(e));
}
