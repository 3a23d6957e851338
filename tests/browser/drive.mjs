// Drives Debian's Chromium through a page that uses Cloudimage's responsive plugin, and prints
// what the browser saw as one JSON object. The Python test (test_cloudimage_plugin.py) starts the
// servers, runs this script and judges the JSON; this script only observes, it asserts nothing.
//
// Usage: node drive.mjs SPEC.json   (SPEC: see test_cloudimage_plugin.py, `_spec`)
//
// - The plugin is the npm package `js-cloudimage-responsive`, bundled unchanged by esbuild from
//   its `main` entry, as an app that `import`s it would.
// - The media domain (e.g. media.miluv.app) is mapped to a local TLS terminator with Chromium's
//   --host-resolver-rules: the browser requests https://media.miluv.app/v7/... as in production,
//   and the terminator passes the bytes, Host header included, to thumbor-py.

import { createRequire } from 'node:module';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { BASE_FLAGS } from './chromium_flags.mjs';

const require = createRequire(import.meta.url);
const esbuild = require('esbuild');
const { chromium } = require('playwright-core');

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ABOVE_THE_FOLD = ['hero', 'fixed', 'private', 'ratio'];
const LAZY = 'lazy';

async function bundlePlugin(outDir) {
  await esbuild.build({
    entryPoints: [require.resolve('js-cloudimage-responsive')],
    bundle: true,
    format: 'iife',
    outfile: path.join(outDir, 'ci.js'),
    logLevel: 'error',
  });
}

function listen(server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

async function startPageServer(bundleDir) {
  const files = {
    '/index.html': [path.join(HERE, 'page', 'index.html'), 'text/html'],
    '/bundle/ci.js': [path.join(bundleDir, 'ci.js'), 'text/javascript'],
    '/bundle/ci.css': [path.join(bundleDir, 'ci.css'), 'text/css'],
    '/lazysizes.js': [
      require.resolve('js-cloudimage-responsive/dist/lazysizes-intersection.js'),
      'text/javascript',
    ],
  };
  const server = http.createServer((request, response) => {
    const file = files[new URL(request.url, 'http://page').pathname];
    if (!file) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { 'Content-Type': file[1], 'Cache-Control': 'no-store' });
    response.end(fs.readFileSync(file[0]));
  });
  return [server, await listen(server)];
}

// TLS in front of thumbor-py, as a CDN or load balancer would be: bytes pass through untouched.
async function startTlsTerminator(spec) {
  const options = { cert: fs.readFileSync(spec.tls.cert), key: fs.readFileSync(spec.tls.key) };
  const server = tls.createServer(options, (client) => {
    const upstream = net.connect(spec.server_port, '127.0.0.1');
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  return [server, await listen(server)];
}

async function launch(spec, scenario, tlsPort, profile) {
  const args = [
    ...BASE_FLAGS,
    '--remote-debugging-pipe',
    `--user-data-dir=${profile}`,
    `--host-resolver-rules=${[spec.domain, ...spec.other_domains]
      .map((domain) => `MAP ${domain} 127.0.0.1:${tlsPort}`)
      .join(', ')}`,
    `--window-size=${scenario.width},${scenario.height}`,
    `--force-device-scale-factor=${scenario.dpr}`,
  ];
  const browser = await chromium.launch({
    executablePath: spec.chromium,
    ignoreDefaultArgs: true,
    args,
    timeout: 30000,
  });
  return [browser, args];
}

function recordTraffic(page, domain) {
  const traffic = { requests: [], responses: [], failures: [], console: [], pageErrors: [], pending: [] };
  const prefix = `https://${domain}/`;
  page.on('request', (request) => {
    if (request.url().startsWith(prefix)) traffic.requests.push(request.url());
  });
  page.on('response', (response) => {
    if (!response.url().startsWith(prefix)) return;
    const entry = { url: response.url(), status: response.status() };
    entry.contentType = response.headers()['content-type'] || null;
    traffic.responses.push(entry);
    // The Host header as sent on the wire (HTTP/1.1 through the TLS terminator).
    const host = response.request().allHeaders().then((headers) => (entry.host = headers.host || null));
    traffic.pending.push(host);
  });
  page.on('requestfailed', (request) => {
    traffic.failures.push({ url: request.url(), error: request.failure()?.errorText || null });
  });
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warning') {
      traffic.console.push({ text: `${message.type()}: ${message.text()}`, url: message.location().url });
    }
  });
  page.on('pageerror', (error) => traffic.pageErrors.push(String(error)));
  return traffic;
}

// True once every named image has settled: loaded (and the plugin saw it) or broken.
function settled(ids) {
  return ids.every((id) => {
    const img = document.getElementById(id);
    if (!img || !img.currentSrc || !img.complete) return false;
    return img.naturalWidth === 0 || img.classList.contains('ci-image-loaded');
  });
}

async function waitSettled(page, ids, timeout) {
  try {
    await page.waitForFunction(settled, ids, { timeout, polling: 50 });
    return true;
  } catch (error) {
    return false;
  }
}

function describeImages(ids) {
  return ids.map((id) => {
    const img = document.getElementById(id);
    const box = img.getBoundingClientRect();
    const section = img.closest('section').getBoundingClientRect();
    return {
      id,
      ciSrc: img.getAttribute('ci-src'),
      src: img.getAttribute('src'),
      srcset: img.getAttribute('srcset'),
      currentSrc: img.currentSrc,
      complete: img.complete,
      loadedClass: img.classList.contains('ci-image-loaded'),
      naturalWidth: img.naturalWidth,
      naturalHeight: img.naturalHeight,
      left: box.left,
      top: box.top,
      renderedWidth: box.width,
      renderedHeight: box.height,
      sectionWidth: section.width,
    };
  });
}

// The size of what each URL serves, decoded by the browser itself.
function measure(urls) {
  return Promise.all(
    urls.map(
      (url) =>
        new Promise((resolve) => {
          const img = new Image();
          img.onload = () => resolve({ url, width: img.naturalWidth, height: img.naturalHeight });
          img.onerror = () => resolve({ url, width: 0, height: 0 });
          img.src = url;
        }),
    ),
  );
}

// Open each URL as a top-level navigation and report its status (e.g. an unknown Host: 421).
async function probe(context, urls) {
  const page = await context.newPage();
  const results = [];
  for (const url of urls) {
    const response = await page.goto(url);
    results.push({ url, status: response.status(), contentType: response.headers()['content-type'] || null });
  }
  await page.close();
  return results;
}

// SPEC.artifacts/NAME.png: the viewport as shown, in device pixels (the test samples -top).
async function screenshot(page, spec, name) {
  const file = path.join(spec.artifacts, `${name}.png`);
  await page.screenshot({ path: file });
  return file;
}

async function runScenario(spec, scenario, pageUrl, tlsPort, workDir) {
  const profile = fs.mkdtempSync(path.join(workDir, 'profile-'));
  const [browser, flags] = await launch(spec, scenario, tlsPort, profile);
  const started = Date.now();
  try {
    // Headless Chromium keeps windows at least 500 px wide: the viewport is set through CDP.
    const context = await browser.newContext({
      viewport: { width: scenario.width, height: scenario.height },
      deviceScaleFactor: scenario.dpr,
      isMobile: scenario.mobile,
      hasTouch: scenario.mobile,
      ignoreHTTPSErrors: true, // the terminator's certificate is self-signed
    });
    const page = await context.newPage();
    const traffic = recordTraffic(page, spec.domain);
    await page.goto(pageUrl, { waitUntil: 'load' });
    const aboveSettled = await waitSettled(page, ABOVE_THE_FOLD, spec.timeout_ms);
    await page.waitForTimeout(spec.settle_ms); // time enough for a non-lazy image to start
    await page.waitForTimeout(spec.fade_ms); // the plugin's fade from the preview
    const top = await page.evaluate(describeImages, ABOVE_THE_FOLD);
    const topScreenshot = await screenshot(page, spec, `${scenario.name}-top`);
    const lazyBefore = {
      requested: traffic.requests.some((url) => url.includes('lazy.jpg')),
      image: (await page.evaluate(describeImages, [LAZY]))[0],
    };
    await page.mouse.wheel(0, 100000);
    const lazySettled = await waitSettled(page, [LAZY], spec.timeout_ms);
    const images = await page.evaluate(describeImages, [...ABOVE_THE_FOLD, LAZY]);
    const urls = [...new Set(traffic.responses.map((entry) => entry.url))];
    const served = await page.evaluate(measure, urls);
    await page.waitForTimeout(spec.fade_ms);
    await screenshot(page, spec, `${scenario.name}-bottom`);
    const environment = await page.evaluate(() => ({
      innerWidth: window.innerWidth,
      devicePixelRatio: window.devicePixelRatio,
      userAgent: navigator.userAgent,
    }));
    const probes = await probe(context, spec.probes);
    await Promise.all(traffic.pending);
    return {
      name: scenario.name,
      scenario,
      flags,
      browserVersion: browser.version(),
      environment,
      aboveSettled,
      top,
      topScreenshot,
      lazyBefore,
      lazySettled,
      images,
      requests: traffic.requests,
      responses: traffic.responses,
      served,
      failures: traffic.failures,
      console: traffic.console,
      pageErrors: traffic.pageErrors,
      probes,
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    await browser.close();
  }
}

async function main() {
  const spec = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'thumbor-py-browser-'));
  const servers = [];
  try {
    await bundlePlugin(workDir);
    const [pageServer, pagePort] = await startPageServer(workDir);
    servers.push(pageServer);
    const [terminator, tlsPort] = await startTlsTerminator(spec);
    servers.push(terminator);
    const query = new URLSearchParams({
      domain: spec.domain,
      origin: spec.origin,
      private: spec.presigned,
    });
    const pageUrl = `http://127.0.0.1:${pagePort}/index.html?${query}`;
    const runs = [];
    for (const scenario of spec.scenarios) {
      runs.push(await runScenario(spec, scenario, pageUrl, tlsPort, workDir));
    }
    const plugin = require('js-cloudimage-responsive/package.json').version;
    const driver = require('playwright-core/package.json').version;
    process.stdout.write(JSON.stringify({ plugin, driver, pageUrl, runs }) + '\n');
  } finally {
    servers.forEach((server) => server.close());
    fs.rmSync(workDir, { recursive: true, force: true });
  }
}

main().then(() => process.exit(0), (error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
