// The dashboard on a cluster, in a real browser: headless Chromium driven by playwright-core
// against `kelp dashboard` aimed at a control plane with a real node (crates/kelp-cli/tests/node.rs
// starts both, deploys the function and calls it). The function list reads the calls and latency
// of the function's pod from its /metrics through the API's pod proxy, and the function's page
// charts its instance from successive scrapes. Every step waits for what the user would see.
//
// Environment: KELP_DASHBOARD_URL (the login URL), KELP_BROWSER_TOOLS, KELP_CHROMIUM,
// KELP_NAMESPACE and KELP_FUNCTION (the function), KELP_CALLS (the calls it has had at least).
'use strict';

const path = require('node:path');

const { chromium } = require(path.join(process.env.KELP_BROWSER_TOOLS, 'node_modules', 'playwright-core'));
const namespace = process.env.KELP_NAMESPACE;
const fn = process.env.KELP_FUNCTION;
const calls = Number(process.env.KELP_CALLS);
// Eventual conditions get generous deadlines: a small, busy machine.
const WAIT = 120000;

const step = (name) => console.log(`step: ${name}`);

async function main() {
  const browser = await chromium.launch({ executablePath: process.env.KELP_CHROMIUM, args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('pageerror', (e) => console.log(`page error: ${e.message}`));
    await page.goto(process.env.KELP_DASHBOARD_URL);
    await page.goto(new URL(`/ui/#/?namespace=${encodeURIComponent(namespace)}`, process.env.KELP_DASHBOARD_URL).href);

    step(`the list shows ${fn}'s calls and latency, read from its pod`);
    const row = `#functions tr[data-name="${fn}"]`;
    await page.waitForSelector(row, { timeout: WAIT });
    // Cells after the name: namespace, ready, runtime, age, calls, errors, p50, p99.
    await page.waitForFunction(([selector, want]) => {
      const cells = [...document.querySelectorAll(`${selector} td`)].map((td) => td.textContent);
      return cells.length === 8 && Number(cells[4]) >= want && cells[5] === '0' && cells[6] !== '–' && cells[7] !== '–';
    }, [row, calls], { timeout: WAIT });
    console.log(`row: ${(await page.locator(row).innerText()).replace(/\s+/g, ' ')}`);

    step(`${fn}'s page charts its instance`);
    await page.click(`${row} a`);
    await page.waitForFunction(() => [...document.querySelectorAll('figure.chart')].some((f) => (
      f.querySelector('h3').textContent === 'Instances' && /instances 1$/.test(f.querySelector('figcaption').textContent))), null, { timeout: WAIT });
    const captions = await page.locator('figure.chart figcaption').allInnerTexts();
    console.log(`charts: ${captions.join(' | ')}`);
    console.log('every step passed');
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
