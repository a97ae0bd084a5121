// Drives Debian's headless Chromium through playwright-core (never a downloaded browser) for
// the Rust browser tests: opens each URL in its own tab (or, with --processes, its own
// browser), waits until every tab is done, takes a screenshot of each tab's canvas, and prints
// one JSON line:
// {"tabs": [{"status": ..., "shown": the page's status line, "screenshot": path, "url": ...,
// "after": with --close-first, the status once the first tab is gone}]}.
//
//   node drive.mjs --out DIR [--until checksum|frame:N|failed] [--timeout SECS] [--private]
//                  [--processes] [--mdns] [--close-first] [--chat] URL...
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
// --chat: once every tab is playing, each tab chats through the page as a player would: with
// the chat box focused it holds W (the game must not see it: "keys_typing", the status's
// "keys"), types its line (CHAT_LINE with its index, non-ASCII included) and presses Enter,
// then Escape back to the game and holds W again (the game sees it: "keys_playing"). The run
// is done once every tab is done and lists every other tab's line in its status's "chat"; a
// second later each status is read again, and the page's chat list is reported as "chat_shown"
// (each line's text as shown, e.g. "P2 hello"), with a screenshot of the whole page
// ("page_screenshot").
// --reload-last-at N: once the last tab plays at frame N, reload it (as a player pressing F5
// would); its report gets "reloaded_at_frame" and "back_ms", the time from the reload until it
// confirms a frame of the epoch it came back in (its status's "rejoined").
// --freeze-last-at N [--freeze-secs S]: once the last tab plays at frame N, freeze it between
// two tasks (a `debugger` statement under CDP: its JavaScript and timers stop, as a background
// tab's can) for S seconds (default 8), then resume it; its report gets "frozen_at_frame" and
// "back_ms", from the end of the freeze until it confirms a frame of the epoch it came back in.
// --close-first: once every tab is done, the first tab leaves the match (window.ricochet.leave(),
// as a player quitting through the game would) and is closed (with --processes, its whole
// browser), wait 3 s and read the other tabs' statuses again.
import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CHROMIUM = process.env.RICOCHET_CHROMIUM || '/usr/bin/chromium';

function parseArgs(argv) {
  const args = { out: null, until: 'checksum', timeout: 180, private: false, processes: false, mdns: false, closeFirst: false, chat: false, reloadLastAt: null, freezeLastAt: null, freezeSecs: 8, urls: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--out') args.out = argv[++i];
    else if (a === '--until') args.until = argv[++i];
    else if (a === '--timeout') args.timeout = Number(argv[++i]);
    else if (a === '--private') args.private = true;
    else if (a === '--processes') args.processes = true;
    else if (a === '--mdns') args.mdns = true;
    else if (a === '--close-first') args.closeFirst = true;
    else if (a === '--chat') args.chat = true;
    else if (a === '--reload-last-at') args.reloadLastAt = Number(argv[++i]);
    else if (a === '--freeze-last-at') args.freezeLastAt = Number(argv[++i]);
    else if (a === '--freeze-secs') args.freezeSecs = Number(argv[++i]);
    else if (a.startsWith('--')) throw new Error(`unknown flag ${a}`);
    else args.urls.push(a);
  }
  if (!args.out || args.urls.length === 0) throw new Error('usage: drive.mjs --out DIR [--until checksum|frame:N|failed] [--timeout SECS] URL...');
  if (!(['checksum', 'failed', 'forensics'].includes(args.until) || /^frame:\d+$/.test(args.until))) throw new Error(`bad --until ${args.until}`);
  if (!(args.timeout > 0)) throw new Error('bad --timeout');
  if (args.private && args.urls.length !== 1) throw new Error('--private takes one URL');
  return args;
}

// The chat line tab `i` sends with --chat.
const CHAT_LINE = (i) => `hello from tab ${i}, héllo ⚡`;

// With --chat: every tab lists every other tab's line.
function chatDone() {
  return tabs.every((t, i) => tabs.every((_, j) => i === j
    || (t.status.chat || []).some((l) => l.text === CHAT_LINE(j) && l.from !== t.status.handle)));
}

// With --chat: tab `i` chats through its page (see the top of this file).
async function chat(tab, i) {
  const { page } = tab;
  const keys = async () => JSON.parse(await page.evaluate(() => window.ricochet.status())).keys;
  const input = page.locator('#chat-input');
  await input.waitFor({ state: 'visible' });
  await input.click();
  await page.keyboard.down('KeyW');
  tab.keys_typing = await keys();
  await page.keyboard.up('KeyW');
  await input.fill('');
  await input.pressSequentially(CHAT_LINE(i));
  await input.press('Enter');
  tab.chat_error = (await page.locator('#chat-error').isVisible())
    ? await page.locator('#chat-error').textContent() : null;
  await input.press('Escape');
  await page.keyboard.down('KeyW');
  tab.keys_playing = await keys();
  await page.keyboard.up('KeyW');
}

function done(until, status) {
  if (until === 'failed') return status.state === 'failed';
  if (status.state !== 'playing' && status.state !== 'watching') return false;
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
  const readStatuses = async () => {
    for (const tab of tabs) {
      const text = await tab.page.evaluate(() => (window.ricochet ? window.ricochet.status() : null));
      tab.status = text ? JSON.parse(text) : { state: 'loading' };
    }
  };
  let chatted = false;
  let reloadedAt = null;
  for (;;) {
    await readStatuses();
    if (args.reloadLastAt != null || args.freezeLastAt != null) {
      const last = tabs[tabs.length - 1];
      const at = args.reloadLastAt != null ? args.reloadLastAt : args.freezeLastAt;
      if (reloadedAt == null && last.status.state === 'playing' && last.status.frame >= at) {
        if (args.reloadLastAt != null) {
          last.reloaded_at_frame = last.status.frame;
          reloadedAt = Date.now();
          process.stderr.write(`drive: reloading the last tab at frame ${last.status.frame}\n`);
          await last.page.reload();
        } else {
          last.frozen_at_frame = last.status.frame;
          const cdp = await last.context.newCDPSession(last.page);
          process.stderr.write(`drive: freezing the last tab at frame ${last.status.frame} for ${args.freezeSecs} s\n`);
          // The page stops between two tasks, as a frozen background tab does: a `debugger`
          // statement evaluated as a task of its own runs only once the game loop's current
          // tick has returned (Debugger.pause would stop at whatever statement runs, possibly
          // halfway through a tick, which no browser does to a background tab). No timer runs
          // until it is resumed.
          await cdp.send('Debugger.enable');
          const paused = new Promise((r) => cdp.once('Debugger.paused', r));
          const stopped = cdp.send('Runtime.evaluate', { expression: 'debugger;' });
          await paused;
          await new Promise((r) => setTimeout(r, args.freezeSecs * 1000));
          await cdp.send('Debugger.resume');
          await stopped;
          await cdp.send('Debugger.disable');
          reloadedAt = Date.now();
        }
        continue;
      }
      const back = (last.status.rejoined || []).find((r) => r.peer === last.status.peer);
      if (reloadedAt != null && last.back_ms == null && back && last.status.confirmed > back.frame) {
        last.back_ms = Date.now() - reloadedAt;
      }
      if (reloadedAt == null || last.back_ms == null) {
        if (Date.now() > deadline) {
          process.stderr.write('drive: the reloaded tab never came back\n');
          code = 1;
          break;
        }
        if (tabs.some((t) => t.status.state === 'failed')) { code = 1; break; }
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
    }
    if (args.until !== 'failed' && tabs.some((t) => t.status.state === 'failed')) { code = 1; break; }
    if (args.chat && !chatted && tabs.every((t) => t.status.state === 'playing')) {
      for (const [i, tab] of tabs.entries()) await chat(tab, i);
      chatted = true;
      continue;
    }
    if (tabs.every((t) => done(args.until, t.status)) && (!args.chat || (chatted && chatDone()))) {
      if (args.chat) {
        // A copy would show by now.
        await new Promise((r) => setTimeout(r, 1000));
        await readStatuses();
      }
      break;
    }
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
    if (args.chat) {
      tab.chat_shown = await tab.page.locator('#chat-log li').allInnerTexts();
      tab.page_screenshot = join(args.out, `tab-${i}-page.png`);
      await tab.page.screenshot({ path: tab.page_screenshot, fullPage: true });
    }
  }
  if (args.closeFirst && code === 0) {
    const [first, ...rest] = tabs;
    first.url = first.page.url();
    // A player quitting leaves through the game first (a page only closed keeps its place for
    // the rejoin grace, as a reload does).
    await first.page.evaluate(() => window.ricochet.leave());
    await new Promise((r) => setTimeout(r, 200));
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
    download: t.download, chat_shown: t.chat_shown, keys_typing: t.keys_typing,
    keys_playing: t.keys_playing, chat_error: t.chat_error, page_screenshot: t.page_screenshot,
    reloaded_at_frame: t.reloaded_at_frame, frozen_at_frame: t.frozen_at_frame, back_ms: t.back_ms,
  });
  console.log(JSON.stringify({ tabs: tabs.map(tabReport) }));
  for (const { context, profile } of browsers) {
    await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  }
}
process.exit(code);
