// Drives Debian's Chromium through thumbor-py's operator upload page (GET /upload) and prints
// what the browser saw as one JSON object; test_upload_page.py judges it (nothing asserted here).
//
// Usage: node drive_upload.mjs SPEC.json   (SPEC: {chromium, url, key, file, profile})

import { createRequire } from 'node:module';
import fs from 'node:fs';
import { BASE_FLAGS } from './chromium_flags.mjs';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');

async function main() {
  const spec = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const browser = await chromium.launch({
    executablePath: spec.chromium,
    ignoreDefaultArgs: true,
    args: [...BASE_FLAGS, '--remote-debugging-pipe', `--user-data-dir=${spec.profile}`],
    timeout: 30000,
  });
  const report = { console: [], pageErrors: [], requests: [], failures: [] };
  try {
    const page = await browser.newPage();
    page.on('console', (message) => report.console.push(message.text()));
    page.on('pageerror', (error) => report.pageErrors.push(String(error)));
    page.on('requestfinished', async (request) => {
      const response = await request.response();
      report.requests.push({ method: request.method(), url: request.url(), status: response?.status() });
    });
    page.on('requestfailed', (request) => report.failures.push(request.url()));
    const answer = await page.goto(spec.url);
    report.pageStatus = answer?.status();
    await page.fill('#key', spec.key);
    await page.setInputFiles('#file', spec.file);
    await page.fill('#title', 'From the browser');
    await page.click('#send');
    await page.waitForSelector('#status[data-state=done], #status[data-state=error]', { timeout: 30000 });
    report.status = await page.$eval('#status', (el) => [el.dataset.state, el.textContent]);
    await page.waitForFunction(
      () => [...document.querySelectorAll('#previews img')].every((img) => img.complete),
      null,
      { timeout: 30000 },
    );
    report.previews = await page.$$eval('#previews img', (images) =>
      images.map((img) => ({
        preset: img.dataset.preset,
        src: img.getAttribute('src'),
        width: img.naturalWidth,
        height: img.naturalHeight,
      })),
    );
    report.record = JSON.parse((await page.textContent('#record')) || 'null');
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(report));
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error));
  process.exit(1);
});
