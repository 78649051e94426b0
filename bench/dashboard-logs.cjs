// The dashboard's memory while it follows a busy log: opens a function's page (which follows its
// pod's log), has the function called CALLS_PER_S times a second for MINUTES minutes (each call
// prints 20 lines), and every minute samples the page's JavaScript heap and DOM nodes (DevTools
// protocol) and the proportional resident memory (Pss) of the browser's renderer processes
// (/proc). Prints
// "rss_start rss_end rss_max heap_start heap_end lines_printed lines_shown" (MiB, MiB, ...).
//   node bench/dashboard-logs.cjs LOGIN_URL FUNCTION_PAGE_URL FUNCTION_URL MINUTES
// Environment: KELP_BROWSER_TOOLS (scripts/browser's directory), KELP_CHROMIUM, CALLS_PER_S (20).
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { chromium } = require(path.join(process.env.KELP_BROWSER_TOOLS, 'node_modules', 'playwright-core'));

const [login, pageUrl, fnUrl, minutes] = process.argv.slice(2);
const perSecond = Number(process.env.CALLS_PER_S || 20);

/** The proportional resident memory (MiB, Pss) of the renderer processes under `root`. */
function rendererRss(root) {
  const children = new Map();
  for (const name of fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(name));
    } catch { /* gone */ }
  }
  let total = 0;
  const todo = [root];
  while (todo.length) {
    const pid = todo.pop();
    for (const child of children.get(pid) || []) {
      todo.push(child);
      try {
        if (!fs.readFileSync(`/proc/${child}/cmdline`, 'utf8').includes('--type=renderer')) continue;
        // Its proportional share (Pss) of what it maps: a renderer's RSS counts whole the memory
        // it shares with the other Chromium processes.
        const pss = /^Pss:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${child}/smaps_rollup`, 'utf8'));
        if (pss) total += Number(pss[1]) / 1024;
      } catch { /* gone */ }
    }
  }
  return total;
}

(async () => {
  const browser = await chromium.launch({ executablePath: process.env.KELP_CHROMIUM, args: ['--no-sandbox'] });
  try {
    // The browser is a child of this process.
    const root = process.pid;
    const page = await browser.newPage();
    page.on('crash', () => console.error('the page crashed'));
    await page.goto(login);
    await page.goto(pageUrl);
    await page.waitForFunction(() => /Following/.test(document.querySelector('section[aria-labelledby="s-logs"]').textContent), null, { timeout: 120000 });
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Performance.enable');
    const sample = async () => {
      const { metrics } = await cdp.send('Performance.getMetrics');
      const get = (name) => metrics.find((m) => m.name === name).value;
      return { heap: get('JSHeapUsedSize') / 1048576, nodes: get('Nodes'), rss: rendererRss(root) };
    };
    let sent = 0;
    const timer = setInterval(() => { sent += 1; fetch(fnUrl, { method: 'POST', body: `call-${sent}` }).catch(() => {}); }, 1000 / perSecond);
    await new Promise((r) => setTimeout(r, 10000));
    const first = await sample();
    console.error(`start: renderer ${first.rss.toFixed(1)} MiB, heap ${first.heap.toFixed(1)} MiB, ${first.nodes} DOM nodes`);
    let last = first;
    let max = first.rss;
    for (let m = 1; m <= Number(minutes); m += 1) {
      await new Promise((r) => setTimeout(r, 60000));
      last = await sample();
      max = Math.max(max, last.rss);
      console.error(`minute ${m}: renderer ${last.rss.toFixed(1)} MiB, heap ${last.heap.toFixed(1)} MiB, ${last.nodes} DOM nodes, ${sent} calls`);
    }
    clearInterval(timer);
    const shown = await page.evaluate(() => document.getElementById('log').textContent.split('\n').length - 1);
    console.log(`${first.rss.toFixed(1)} ${last.rss.toFixed(1)} ${max.toFixed(1)} ${first.heap.toFixed(1)} ${last.heap.toFixed(1)} ${sent * 20} ${shown}`);
  } finally {
    await browser.close();
  }
})().catch((e) => { console.error(e.stack || String(e)); process.exit(1); });
