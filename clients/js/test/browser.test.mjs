// The example page (chat plus moving dots) in two pages of Debian's headless Chromium, driven
// by playwright-core (never a downloaded browser). clients/js is served by a small Node HTTP
// server; the pages talk to the real signaling server and relay.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join, normalize, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { REPO, startServers } from './servers.mjs';

// Under RICOCHET_JS_REQUIRE_ALL=1 (scripts/test, CI) a missing piece fails the test instead of
// skipping it, so CI never passes without running it.
function skipOrFail(t, why) {
  if (process.env.RICOCHET_JS_REQUIRE_ALL === '1') throw new Error(`required but unavailable: ${why}`);
  return t.skip(why);
}

const CHROMIUM = process.env.RICOCHET_CHROMIUM || '/usr/bin/chromium';
const ROOT = resolve(REPO, 'clients/js');

// playwright-core from clients/js (npm ci), else the copy tests/browser installed.
async function playwright() {
  for (const dir of [join(ROOT, 'node_modules/playwright-core'), join(REPO, 'tests/browser/node_modules/playwright-core')]) {
    if (existsSync(join(dir, 'index.mjs'))) return (await import(pathToFileURL(join(dir, 'index.mjs')).href)).chromium;
  }
  return null;
}

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8', '.css': 'text/css' };
function serve(root) {
  const server = createServer((req, res) => {
    const path = normalize(join(root, decodeURIComponent(new URL(req.url, 'http://x').pathname)));
    if (!path.startsWith(root) || !existsSync(path) || !statSync(path).isFile()) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[extname(path)] || 'application/octet-stream', 'cache-control': 'no-store' });
    res.end(readFileSync(path));
  });
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r(server)));
}

let servers;
let http;
let browser;
let chromium;
before(async () => {
  chromium = await playwright();
  if (!chromium || !existsSync(CHROMIUM)) return;
  servers = await startServers();
  http = await serve(ROOT);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update',
      '--disable-background-timer-throttling', '--disable-renderer-backgrounding', '--disable-backgrounding-occluded-windows'],
  });
});
after(async () => {
  if (browser) await browser.close();
  if (http) http.close();
  if (servers) await servers.stop();
});

test('the example page: two browsers chat and see each other\'s dots move', async (t) => {
  if (!chromium) return skipOrFail(t, 'playwright-core is not installed (npm ci in clients/js)');
  if (!existsSync(CHROMIUM)) return skipOrFail(t, `no Chromium at ${CHROMIUM}`);
  const page = async (name) => {
    const p = await browser.newPage();
    const errors = [];
    p.on('pageerror', (e) => errors.push(e.message));
    p.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    p.errors = errors;
    const url = `http://127.0.0.1:${http.address().port}/example/index.html?room=dots-${process.pid}&name=${name}&signaling=${encodeURIComponent(servers.signalingUrl)}`;
    await p.goto(url);
    return p;
  };
  const ann = await page('ann');
  const bob = await page('bob');
  for (const p of [ann, bob]) {
    await p.waitForFunction(() => document.querySelector('#status').dataset.state === 'connected' && window.demo.match.members.size === 2, null, { timeout: 15000 });
  }
  const ids = await Promise.all([ann, bob].map((p) => p.evaluate(() => window.demo.match.id)));

  // Each page shows both dots (everyone announces its position on joining).
  for (const p of [ann, bob]) await p.waitForFunction(() => window.demo.dots.size === 2, null, { timeout: 10000 });

  // A chat line each way.
  await ann.fill('#chat', 'hello from ann');
  await ann.press('#chat', 'Enter');
  await bob.locator('#log li', { hasText: 'ann: hello from ann' }).waitFor({ timeout: 10000 });
  await bob.fill('#chat', 'hi ann, bob here');
  await bob.click('#send');
  await ann.locator('#log li', { hasText: 'bob: hi ann, bob here' }).waitFor({ timeout: 10000 });

  // bob moves with a click then the arrow keys; ann's page shows where bob's dot is.
  await bob.click('#field', { position: { x: 200, y: 100 } });
  for (let i = 0; i < 3; i++) await bob.press('#field', 'ArrowRight');
  await bob.press('#field', 'ArrowDown');
  await ann.locator(`#players li[data-peer="${ids[1]}"]`, { hasText: 'bob: 230,110' }).waitFor({ timeout: 10000 });
  // and ann moves: bob sees it.
  await ann.click('#field', { position: { x: 50, y: 60 } });
  await ann.press('#field', 'ArrowUp');
  await bob.locator(`#players li[data-peer="${ids[0]}"]`, { hasText: 'ann: 50,50' }).waitFor({ timeout: 10000 });
  const seen = await ann.evaluate((peer) => window.demo.dots.get(peer), ids[1]);
  assert.deepEqual(seen, { x: 230, y: 110 });

  // ann leaves: bob sees her go.
  await ann.close({ runBeforeUnload: true });
  await bob.waitForFunction(() => window.demo.match.members.size === 1, null, { timeout: 10000 });
  await bob.locator('#log li', { hasText: 'left' }).waitFor({ timeout: 5000 });
  assert.deepEqual(bob.errors, [], 'no page errors');
  await bob.close();
});
