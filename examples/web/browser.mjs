// What check.mjs and bench.mjs share: the repository served on loopback, and headless
// Chromium with WebGPU (puppeteer-core) opening one page of it, until the page sets
// `window.done`; returns its `window.result`.
import puppeteer from 'puppeteer-core';
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';

export async function runPage(path, { timeout = 300000, screenshot } = {}) {
  const root = new URL('../..', import.meta.url).pathname;
  const port = 8000 + Math.floor(Math.random() * 2000);
  const server = spawn('python3', ['-m', 'http.server', String(port), '--bind', '127.0.0.1'],
                       { cwd: root, stdio: 'ignore' });
  let browser;
  try {
    await sleep(1000);
    browser = await puppeteer.launch({
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      headless: 'new',
      args: ['--enable-unsafe-webgpu', '--no-sandbox', '--disable-background-networking',
             '--disable-component-update', '--disable-sync', '--no-first-run'],
      protocolTimeout: timeout + 60000,
    });
    const page = await browser.newPage();
    await page.setViewport({ width: 820, height: 900 });
    page.on('console', m => console.log(`page: ${m.text()}`));
    await page.goto(`http://127.0.0.1:${port}/examples/web/${path}`);
    await page.waitForFunction('window.done === true', { timeout });
    const result = await page.evaluate(() => window.result);
    if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
    return result;
  } finally {
    if (browser) await browser.close();
    server.kill();
  }
}
