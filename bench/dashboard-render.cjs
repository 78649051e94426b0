// Loads the dashboard's function list RUNS times in headless Chromium (after one warm-up load)
// and prints the medians, in ms from the navigation's start, of its `kelp-list-rendered` mark
// (first rows shown) and its `kelp-list-complete` mark (every page arrived): "first all".
//   node bench/dashboard-render.cjs LOGIN_URL N RUNS
// Environment: KELP_BROWSER_TOOLS (scripts/browser's directory), KELP_CHROMIUM.
'use strict';
const path = require('node:path');
const { chromium } = require(path.join(process.env.KELP_BROWSER_TOOLS, 'node_modules', 'playwright-core'));

const [url, n, runs] = process.argv.slice(2);
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

(async () => {
  const browser = await chromium.launch({ executablePath: process.env.KELP_CHROMIUM, args: ['--no-sandbox'] });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const first = [];
    const all = [];
    for (let i = 0; i <= Number(runs); i += 1) {
      const page = await context.newPage();
      await page.goto(url);
      await page.waitForFunction(() => performance.getEntriesByName('kelp-list-complete').length > 0, null, { timeout: 120000 });
      const rows = await page.evaluate(() => document.querySelectorAll('#functions tbody tr').length);
      const info = await page.textContent('#list-info');
      if (!info.startsWith(`${n} function`)) throw new Error(`the list says "${info}", not ${n} functions`);
      if (rows < Math.min(Number(n), 50)) throw new Error(`${rows} rows shown`);
      const [r, c] = await page.evaluate(() => ['kelp-list-rendered', 'kelp-list-complete'].map((m) => performance.getEntriesByName(m)[0].startTime));
      if (i > 0) { first.push(r); all.push(c); }
      if (process.env.KELP_BENCH_DEBUG && i === Number(runs)) {
        const entries = await page.evaluate(() => performance.getEntries().map((e) => `${e.entryType} ${e.name.replace(/token=\w+/, 'token=…')} start ${e.startTime.toFixed(0)} end ${(e.startTime + e.duration).toFixed(0)}`));
        console.error(entries.join('\n'));
      }
      await page.close();
    }
    console.log(`${median(first).toFixed(0)} ${median(all).toFixed(0)}`);
  } finally {
    await browser.close();
  }
})().catch((e) => { console.error(e.stack || String(e)); process.exit(1); });
