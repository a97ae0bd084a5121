// Drives Debian's headless Chromium through playwright-core (never a downloaded browser) for
// the Rust browser tests: opens each URL in its own tab (or, with --processes, its own
// browser), waits until every tab is done, takes a screenshot of each tab's canvas, and prints
// one JSON line:
// {"tabs": [{"status": ..., "shown": the page's status line, "screenshot": path, "url": ...,
// "after": with --close-first, the status once the first tab is gone}]}.
//
//   node drive.mjs --out DIR [--until checksum|frame:N|failed] [--timeout SECS] [--private]
//                  [--processes] [--mdns] [--close-first] URL...
//
// --private: the first tab clicks "New private match" on the (single) URL and the second tab
// opens the link it shows, as a player would send it to a friend.
// --until checksum: every tab's status has a non-null "checksum" (autoplay=SEED&frames=N).
// --until frame:N: every tab is playing at frame N or later.
// --until failed: every tab has given up ("failed", with its error); for tests of refusals.
// --until forensics: every tab offers a desync forensics bundle; each tab's first one is
// downloaded through the page's link into DIR ("download" in the tab's report).
// Otherwise a tab whose status says "failed", or a timeout, ends the run with exit code 1 and
// the statuses.
// --processes: each URL opens in its own Chromium process (its own persistent context and
// profile directory), as two players on one machine would run two browsers, instead of as
// tabs of one browser.
// --mdns: keep Chromium's default of hiding local addresses behind mDNS names in WebRTC ICE
// candidates (by default drive.mjs turns it off with WebRtcHideLocalIpsWithMdns).
// --close-first: once every tab is done, close the first tab (with --processes, its whole
// browser, as a player quitting would), wait 3 s and read the other tabs' statuses again.
import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CHROMIUM = process.env.RICOCHET_CHROMIUM || '/usr/bin/chromium';

function parseArgs(argv) {
  const args = { out: null, until: 'checksum', timeout: 180, private: false, processes: false, mdns: false, closeFirst: false, urls: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--out') args.out = argv[++i];
    else if (a === '--until') args.until = argv[++i];
    else if (a === '--timeout') args.timeout = Number(argv[++i]);
    else if (a === '--private') args.private = true;
    else if (a === '--processes') args.processes = true;
    else if (a === '--mdns') args.mdns = true;
    else if (a === '--close-first') args.closeFirst = true;
    else if (a.startsWith('--')) throw new Error(`unknown flag ${a}`);
    else args.urls.push(a);
  }
  if (!args.out || args.urls.length === 0) throw new Error('usage: drive.mjs --out DIR [--until checksum|frame:N|failed] [--timeout SECS] URL...');
  if (!(['checksum', 'failed', 'forensics'].includes(args.until) || /^frame:\d+$/.test(args.until))) throw new Error(`bad --until ${args.until}`);
  if (!(args.timeout > 0)) throw new Error('bad --timeout');
  if (args.private && args.urls.length !== 1) throw new Error('--private takes one URL');
  return args;
}

function done(until, status) {
  if (until === 'failed') return status.state === 'failed';
  if (status.state !== 'playing') return false;
  if (until === 'checksum') return status.checksum != null;
  if (until === 'forensics') return (status.forensics || []).length > 0;
  return status.frame >= Number(until.slice('frame:'.length));
}

const args = parseArgs(process.argv.slice(2));
mkdirSync(args.out, { recursive: true });
// One browser (persistent context, own profile directory) per process.
const browsers = [];
async function launch() {
  const profile = mkdtempSync(join(tmpdir(), 'ricochet-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1000, height: 900 },
    acceptDownloads: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      ...(args.mdns ? [] : ['--disable-features=WebRtcHideLocalIpsWithMdns']),
      '--enable-logging=stderr',
      // Tabs other than the front one keep their timers and animation frames running.
      '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
      '--disable-backgrounding-occluded-windows',
    ],
  });
  browsers.push({ context, profile });
  return context;
}
// A page: the browser's first one if it has not been used yet, a new tab otherwise.
const used = new Set();
async function open(context) {
  const first = context.pages()[0];
  if (first && !used.has(first)) {
    used.add(first);
    return first;
  }
  const page = await context.newPage();
  used.add(page);
  return page;
}
let code = 0;
const tabs = [];
try {
  const shared = args.processes ? null : await launch();
  for (const [i, url] of args.urls.entries()) {
    const context = shared || (await launch());
    const page = await open(context);
    page.on('console', (m) => process.stderr.write(`[tab ${i}] ${m.type()}: ${m.text()}\n`));
    page.on('pageerror', (e) => process.stderr.write(`[tab ${i}] page error: ${e.message}\n`));
    await page.goto(url);
    tabs.push({ page, context, status: null });
  }
  if (args.private) {
    const first = tabs[0].page;
    await first.waitForFunction(() => window.ricochetLoaded === true);
    await first.click('#private');
    const box = first.locator('#link-text');
    await box.waitFor({ state: 'visible' });
    const link = await box.inputValue();
    process.stderr.write(`drive: private match link ${link}\n`);
    const context = shared || (await launch());
    const page = await open(context);
    page.on('console', (m) => process.stderr.write(`[tab 1] ${m.type()}: ${m.text()}\n`));
    await page.goto(link);
    tabs.push({ page, context, status: null, link });
  }
  const deadline = Date.now() + args.timeout * 1000;
  for (;;) {
    for (const tab of tabs) {
      const text = await tab.page.evaluate(() => (window.ricochet ? window.ricochet.status() : null));
      tab.status = text ? JSON.parse(text) : { state: 'loading' };
    }
    if (args.until !== 'failed' && tabs.some((t) => t.status.state === 'failed')) { code = 1; break; }
    if (tabs.every((t) => done(args.until, t.status))) break;
    if (Date.now() > deadline) {
      process.stderr.write(`drive: timed out after ${args.timeout}s\n`);
      code = 1;
      break;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  if (args.until === 'forensics' && code === 0) {
    for (const [i, tab] of tabs.entries()) {
      const link = tab.page.locator('#forensics a').first();
      await link.waitFor({ state: 'visible' });
      const [download] = await Promise.all([tab.page.waitForEvent('download'), link.click()]);
      tab.download = join(args.out, `tab-${i}-${download.suggestedFilename()}`);
      await download.saveAs(tab.download);
    }
  }
  for (const [i, tab] of tabs.entries()) {
    tab.shown = await tab.page.locator('#status').textContent();
    tab.screenshot = join(args.out, `tab-${i}.png`);
    await tab.page.locator('#game').screenshot({ path: tab.screenshot });
  }
  if (args.closeFirst && code === 0) {
    const [first, ...rest] = tabs;
    first.url = first.page.url();
    if (args.processes) await first.context.close();
    else await first.page.close();
    await new Promise((r) => setTimeout(r, 3000));
    for (const tab of rest) {
      tab.after = JSON.parse(await tab.page.evaluate(() => window.ricochet.status()));
    }
  }
} catch (e) {
  process.stderr.write(`drive: ${e.stack || e}\n`);
  code = 1;
} finally {
  const tabReport = (t) => ({
    status: t.status, shown: t.shown, screenshot: t.screenshot, url: t.url || t.page.url(), after: t.after,
    download: t.download,
  });
  console.log(JSON.stringify({ tabs: tabs.map(tabReport) }));
  for (const { context, profile } of browsers) {
    await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  }
}
process.exit(code);
