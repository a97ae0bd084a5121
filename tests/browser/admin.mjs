// Drives the signaling server's operator console (/admin) in Debian's headless Chromium for
// tests/admin_console.rs: a wrong token is refused on the page, the right one lists the match
// named --match with its players and the paths they report, a screenshot is kept, and
// "close match" removes it. Prints one JSON line:
// {"refused": the page's error for the wrong token, "row": the match row's text,
//  "screenshot": path, "closed": true}.
//
//   node admin.mjs --url http://HOST:PORT/admin --token TOKEN --wrong WRONG --match NAME
//                  --players N --out DIR [--timeout SECS]
import { chromium } from 'playwright-core';
import { join } from 'node:path';

const CHROMIUM = process.env.RICOCHET_CHROMIUM || '/usr/bin/chromium';

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].slice(2)] = process.argv[i + 1];
for (const need of ['url', 'token', 'wrong', 'match', 'players', 'out']) {
  if (!args[need]) throw new Error(`missing --${need}`);
}
const timeout = Number(args.timeout || 60) * 1000;

const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 700 } });
  await page.goto(args.url);
  await page.fill('#token', args.wrong);
  await page.click('button[type=submit]');
  await page.waitForFunction(() => document.getElementById('error').textContent.includes('401'), null, { timeout });
  const refused = await page.textContent('#error');

  await page.fill('#token', args.token);
  await page.click('button[type=submit]');
  // The match with every player, each having reported a path to the others.
  const players = Number(args.players);
  await page.waitForFunction(({ name, players }) => {
    for (const row of document.querySelectorAll('tr[data-match]')) {
      if (!row.textContent.includes(name)) continue;
      const members = row.querySelectorAll('tr[data-peer]');
      if (members.length !== players) return false;
      // A path and a round-trip time (the first report may come before the first ping).
      return [...members].every((m) => m.querySelector('.relay, .direct') && m.textContent.includes(' ms'));
    }
    return false;
  }, { name: args.match, players }, { timeout, polling: 250 });
  const row = page.locator('tr[data-match]', { hasText: args.match });
  const rowText = await row.textContent();
  const screenshot = join(args.out, 'admin-console.png');
  await page.screenshot({ path: screenshot, fullPage: true });

  await row.locator('button', { hasText: 'close match' }).click();
  await page.waitForFunction((name) => ![...document.querySelectorAll('tr[data-match]')]
    .some((r) => r.textContent.includes(name)), args.match, { timeout });
  console.log(JSON.stringify({ refused, row: rowText, screenshot, closed: true }));
} finally {
  await browser.close();
}
