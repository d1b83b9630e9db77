// The demo page's check: serves the repository, opens examples/web/ in headless Chromium
// with WebGPU, waits for the page to finish, and asserts that training ran, that the loss
// fell, that the GPU and the CPU reference agree, and that the benchmark ran. Saves a
// screenshot. Run after examples/web/build.sh, from examples/web (npm install first):
//   node check.mjs [screenshot.png]
import puppeteer from 'puppeteer-core';
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';

const root = new URL('../..', import.meta.url).pathname;
const port = 8000 + Math.floor(Math.random() * 1000);
const server = spawn('python3', ['-m', 'http.server', String(port), '--bind', '127.0.0.1'],
                     { cwd: root, stdio: 'ignore' });
const fail = message => { console.error(`FAIL: ${message}`); process.exitCode = 1; };
let browser;
try {
  await sleep(1000);
  browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: 'new',
    args: ['--enable-unsafe-webgpu', '--no-sandbox', '--disable-background-networking',
           '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const page = await browser.newPage();
  await page.setViewport({ width: 820, height: 900 });
  page.on('console', m => console.log(`page: ${m.text()}`));
  await page.goto(`http://127.0.0.1:${port}/examples/web/`);
  await page.waitForFunction('window.done === true', { timeout: 300000 });
  const r = await page.evaluate(() => window.result);
  await page.screenshot({ path: process.argv[2] || 'screenshot.png', fullPage: true });
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
} finally {
  if (browser) await browser.close();
  server.kill();
}
