// The dashboard in a real browser: headless Chromium driven by playwright-core against a real
// `kelp dashboard` in front of a real `kelp up` (crates/kelp-cli/tests/dashboard.rs starts both).
// Every step waits for what the user would see; nothing here is a timing assertion.
//
// Environment: KELP_DASHBOARD_URL (the login URL), KELP_BROWSER_TOOLS (scripts/browser's
// directory), KELP_CHROMIUM (the browser), KELP_BIN and KELP_KUBECONFIG (the CLI, for changes made
// outside the page), KELP_RUNTIME (a runtime kelp up runs), KELP_KAFKA_BROKERS (the Kafka broker
// kelp up's triggers consume from), KELP_DASHBOARD_SCREENSHOTS (optional: a directory to write the
// docs' screenshots into).
'use strict';

const path = require('node:path');
const fs = require('node:fs');
const { execFileSync } = require('node:child_process');

const tools = process.env.KELP_BROWSER_TOOLS;
const { chromium } = require(path.join(tools, 'node_modules', 'playwright-core'));
const axeSource = fs.readFileSync(path.join(tools, 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');
const runtime = process.env.KELP_RUNTIME;
const shots = process.env.KELP_DASHBOARD_SCREENSHOTS;
// Eventual conditions get generous deadlines: a small, busy machine.
const WAIT = 90000;

const step = (name) => console.log(`step: ${name}`);

function kelp(...args) {
  return execFileSync(process.env.KELP_BIN, ['--kubeconfig', process.env.KELP_KUBECONFIG, ...args], { encoding: 'utf8' });
}

async function axe(page, what) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  const serious = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  for (const v of result.violations) console.log(`axe (${what}): ${v.impact} ${v.id}: ${v.help} (${v.nodes.length} nodes: ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join('; ')})`);
  if (serious.length) throw new Error(`axe-core found ${serious.length} serious or critical violations on ${what}`);
  console.log(`axe (${what}): no serious or critical violation`);
}

// The docs' screenshots: the top of the page, or one section of it.
async function shot(page, name, section) {
  if (!shots) return;
  const file = path.join(shots, `${name}.png`);
  if (section) {
    await page.locator(`section[aria-labelledby="${section}"]`).screenshot({ path: file });
    return;
  }
  await page.evaluate(() => { document.activeElement.blur(); window.scrollTo(0, 0); });
  await page.screenshot({ path: file });
}

const CODE_V1 = 'def hello(event, context):\n    print("saw", event["data"], flush=True)\n    return "hello v1"\n';
const CODE_V2 = 'def hello(event, context):\n    print("saw", event["data"], flush=True)\n    return "hello v2"\n';

async function setCode(page, text) {
  await page.fill('#fn-code', text);
}

async function call(page, body) {
  await page.selectOption('#call-method', 'POST');
  await page.fill('#call-body-input', body);
  await page.click('button:has-text("Send")');
  await page.waitForSelector('#call-status', { timeout: WAIT });
  return { status: await page.textContent('#call-status'), body: await page.textContent('#call-body') };
}

// The text of the column `column` (a header of the triggers table) in trigger `name`'s row, once
// it starts with `prefix`: the watches bring each status change to the page.
async function triggerCell(page, name, column, prefix = '') {
  const cell = await page.waitForFunction(([n, c, p]) => {
    const at = [...document.querySelectorAll('#triggers thead th')].findIndex((th) => th.textContent === c);
    const row = document.querySelector(`#triggers tr[data-name="${n}"]`);
    const text = at >= 0 && row && row.cells[at] ? row.cells[at].textContent : null;
    return text !== null && text.startsWith(p) ? text : null;
  }, [name, column, prefix], { timeout: WAIT });
  return cell.jsonValue();
}

(async () => {
  const browser = await chromium.launch({ executablePath: process.env.KELP_CHROMIUM, args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('pageerror', (e) => console.log(`page error: ${e.message}`));
    page.on('console', (m) => { if (m.type() === 'error') console.log(`console error: ${m.text()}`); });

    step('the login URL signs in and opens the function list');
    await page.goto(process.env.KELP_DASHBOARD_URL);
    await page.waitForFunction(() => /\d+ functions?/.test((document.getElementById('list-info') || {}).textContent || ''), null, { timeout: WAIT });
    await axe(page, 'the function list');

    step('create: the API\'s field error is shown next to the field');
    await page.click('nav >> text=New function');
    await page.waitForSelector('#fn-name');
    await page.fill('#fn-name', 'hello');
    await page.fill('#fn-runtime', runtime);
    await page.fill('#fn-handler', '');
    await setCode(page, CODE_V1);
    await page.click('button:has-text("Create")');
    await page.waitForSelector('#fn-handler-error:not([hidden])', { timeout: WAIT });
    const error = await page.textContent('#fn-handler-error');
    if (!error.trim()) throw new Error('the handler field error is empty');
    if (await page.getAttribute('#fn-handler', 'aria-invalid') !== 'true') throw new Error('the handler is not marked invalid');
    if (!(await page.evaluate(() => document.activeElement && document.activeElement.id)).startsWith('fn-handler')) throw new Error('the focus is not on the invalid field');
    console.log(`field error next to the handler: ${error}`);
    await axe(page, 'the create form with a field error');
    await shot(page, 'dashboard-new-function');

    step('create: a valid function opens its page and becomes Ready');
    await page.fill('#fn-handler', 'hello.hello');
    await page.click('button:has-text("Create")');
    await page.waitForURL(/#\/function\/default\/hello$/, { timeout: WAIT });
    await page.waitForFunction(() => (document.getElementById('fn-ready') || {}).textContent === 'True', null, { timeout: WAIT });

    step('call: status, headers, body and time');
    await page.waitForFunction(() => document.querySelector('#log-pod option:checked') && document.querySelector('#log-pod').value !== '', null, { timeout: WAIT });
    let answer = await call(page, 'first-call');
    if (!answer.status.includes('200') || !answer.body.includes('hello v1')) throw new Error(`call: ${answer.status} ${answer.body}`);
    console.log(`call answered: ${answer.status.trim()} ${answer.body.trim()}`);

    step('logs: a line printed by a call appears in the followed log');
    answer = await call(page, 'live-log-line');
    await page.waitForFunction(() => (document.getElementById('log') || {}).textContent.includes('live-log-line'), null, { timeout: WAIT });
    await axe(page, 'the function page');
    await shot(page, 'dashboard-function');
    await shot(page, 'dashboard-logs', 's-logs');
    if (shots) {
      // The charts need two scrapes (5 s apart) and calls between them.
      await call(page, 'for-the-charts');
      await page.waitForFunction(() => !document.querySelector('section[aria-labelledby="s-metrics"] figcaption').textContent.includes('waiting'), null, { timeout: WAIT });
      await call(page, 'for-the-charts');
      await page.waitForTimeout(6000);
      await shot(page, 'dashboard-charts', 's-metrics');
    }

    step('edit: a new generation rolls out and the page shows it');
    await page.click('text=Edit this function');
    await page.waitForSelector('#fn-code');
    await setCode(page, CODE_V2);
    await page.click('button:has-text("Save")');
    await page.waitForURL(/#\/function\/default\/hello$/, { timeout: WAIT });
    await page.waitForFunction(() => /^2\b/.test((document.getElementById('fn-generation') || {}).textContent || ''), null, { timeout: WAIT });
    await page.waitForFunction(() => /observed 2/.test((document.getElementById('fn-generation') || {}).textContent || ''), null, { timeout: WAIT });
    for (let i = 0; ; i += 1) {
      answer = await call(page, 'after-edit');
      if (answer.body.includes('hello v2')) break;
      if (i > 60) throw new Error(`the new generation never answered: ${answer.body}`);
      await page.waitForTimeout(500);
    }
    console.log(`after the edit: ${answer.body.trim()}`);

    step('logs: the first generation\'s instance, ended, is still readable');
    const endedPod = await page.waitForFunction(() => {
      const option = [...document.querySelectorAll('#log-pod option')].find((o) => o.textContent.endsWith('(ended)'));
      return option && option.value;
    }, null, { timeout: WAIT });
    await page.selectOption('#log-pod', await endedPod.jsonValue());
    await page.waitForFunction(() => (document.getElementById('log') || {}).textContent.includes('live-log-line'), null, { timeout: WAIT });

    step('the list follows a watch: a function deployed with the CLI appears');
    await page.click('nav >> text=Functions');
    await page.waitForSelector('#functions tr[data-name="hello"]', { timeout: WAIT });
    // Applied with the CLI: a Secret, and a function with a variable from it.
    const manifest = path.join(process.env.KELP_SCRATCH, 'other.json');
    fs.writeFileSync(manifest, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'creds', namespace: 'default' }, stringData: { password: 'hunter2-not-shown' } },
      { apiVersion: 'kubeless.io/v1beta1', kind: 'Function', metadata: { name: 'other', namespace: 'default', labels: { 'created-by': 'kubeless', function: 'other' } },
        spec: { runtime, handler: 'other.other', function: 'def other(event, context):\n    return "other"\n', 'function-content-type': 'text', deps: '', timeout: '180',
          deployment: { spec: { template: { spec: { containers: [{ name: '', env: [
            { name: 'GREETING', value: 'hi' },
            { name: 'PASSWORD', valueFrom: { secretKeyRef: { name: 'creds', key: 'password' } } }] }] } } } } } },
    ] }));
    kelp('apply', '-f', manifest);
    await page.waitForSelector('#functions tr[data-name="other"]', { timeout: WAIT });
    await page.waitForFunction(() => {
      const row = document.querySelector('#functions tr[data-name="hello"]');
      return row && row.cells[5].textContent !== '–';
    }, null, { timeout: WAIT });
    await shot(page, 'dashboard-functions');

    step('triggers: create a cron trigger, see it listed, delete it');
    await page.click('nav >> text=Triggers');
    await page.waitForSelector('#tr-kind');
    await page.selectOption('#tr-kind', 'CronJobTrigger');
    await page.fill('#tr-name', 'every-five');
    await page.fill('#tr-function', 'hello');
    await page.fill('#tr-schedule', '*/5 * * * *');
    await page.click('button:has-text("Create trigger")');
    await page.waitForSelector('#triggers tr[data-name="every-five"]', { timeout: WAIT });
    await axe(page, 'the triggers page');
    // The function's page lists the trigger that calls it.
    await page.goto(new URL('/ui/#/function/default/hello', process.env.KELP_DASHBOARD_URL).href);
    await page.waitForFunction(() => /every-five/.test(document.querySelector('section[aria-labelledby="s-triggers"]').textContent), null, { timeout: WAIT });
    await page.click('nav >> text=Triggers');
    await page.waitForSelector('#triggers tr[data-name="every-five"]', { timeout: WAIT });
    await page.click('button[aria-label="Delete Cron trigger every-five"]');
    await page.waitForSelector('#triggers tr[data-name="every-five"]', { state: 'detached', timeout: WAIT });

    step('HTTP and NATS triggers: created, listed, the NATS one Ready once subscribed, deleted');
    await page.selectOption('#tr-kind', 'HTTPTrigger');
    await page.fill('#tr-name', 'web');
    await page.fill('#tr-function', 'hello');
    await page.fill('#tr-path', 'greet');
    await page.click('button:has-text("Create trigger")');
    await page.waitForSelector('#triggers tr[data-name="web"]', { timeout: WAIT });
    await page.selectOption('#tr-kind', 'NATSTrigger');
    await page.fill('#tr-name', 'events');
    await page.fill('#tr-function', 'hello');
    await page.fill('#tr-topic', 'greetings');
    await page.click('button:has-text("Create trigger")');
    await page.waitForSelector('#triggers tr[data-name="events"]', { timeout: WAIT });
    const nats = JSON.parse(kelp('get', 'natstrigger', 'events', '-o', 'json'));
    if (nats.spec.topic !== 'greetings' || nats.spec.functionSelector.matchLabels.function !== 'hello') throw new Error(`NATS trigger: ${JSON.stringify(nats.spec)}`);
    await triggerCell(page, 'events', 'Ready', 'True');
    for (const [kind, name] of [['HTTP', 'web'], ['NATS', 'events']]) {
      await page.click(`button[aria-label="Delete ${kind} trigger ${name}"]`);
      await page.waitForSelector(`#triggers tr[data-name="${name}"]`, { state: 'detached', timeout: WAIT });
    }

    step('Kafka trigger: created in the page, Ready once subscribed, a message reaches the function, its lag shown, deleted');
    const topic = `dashboard-${process.pid}`;
    kelp('topic', 'create', topic, '--kafka-brokers', process.env.KELP_KAFKA_BROKERS);
    await page.selectOption('#tr-kind', 'KafkaTrigger');
    await page.fill('#tr-name', 'orders');
    await page.fill('#tr-function', 'hello');
    await page.fill('#tr-topic', topic);
    await page.click('button:has-text("Create trigger")');
    await page.waitForSelector('#triggers tr[data-name="orders"]', { timeout: WAIT });
    const ready = await triggerCell(page, 'orders', 'Ready', 'True');
    console.log(`the Kafka trigger's Ready cell: ${ready}`);
    const payload = `kafka-payload-${process.pid}`;
    kelp('topic', 'publish', '--topic', topic, '--data', payload, '--kafka-brokers', process.env.KELP_KAFKA_BROKERS);
    // The function's page follows its log (where the message's call prints it) and lists the trigger.
    await page.goto(new URL('/ui/#/function/default/hello', process.env.KELP_DASHBOARD_URL).href);
    await page.waitForFunction(() => /orders/.test(document.querySelector('section[aria-labelledby="s-triggers"]').textContent), null, { timeout: WAIT });
    await page.waitForFunction((p) => ((document.getElementById('log') || {}).textContent || '').includes(p), payload, { timeout: WAIT });
    await page.click('nav >> text=Triggers');
    await page.waitForSelector('#triggers tr[data-name="orders"]', { timeout: WAIT });
    // The consumer reports its lag (librdkafka's statistics) into the status the watch delivers.
    await triggerCell(page, 'orders', 'Lag', '0 messages');
    const lastError = await triggerCell(page, 'orders', 'Last error');
    if (lastError !== '–') throw new Error(`the Kafka trigger's last error: ${lastError}`);
    await axe(page, 'the triggers page with their health');
    await shot(page, 'dashboard-triggers');
    await page.click('button[aria-label="Delete Kafka trigger orders"]');
    await page.waitForSelector('#triggers tr[data-name="orders"]', { state: 'detached', timeout: WAIT });

    step('environment: a variable from a Secret shows where it comes from, never its value');
    await page.goto(new URL('/ui/#/function/default/other', process.env.KELP_DASHBOARD_URL).href);
    await page.waitForSelector('section[aria-labelledby="s-env"] td', { timeout: WAIT });
    const env = await page.textContent('section[aria-labelledby="s-env"]');
    if (!env.includes('GREETING') || !env.includes('hi') || !env.includes('from Secret creds, key password (value not shown)')) throw new Error(`environment: ${env}`);
    if ((await page.content()).includes('hunter2')) throw new Error('the Secret\'s value is on the page');

    step('delete: the function goes, and the list follows');
    await page.click('button:has-text("Delete other")');
    await page.click('#confirm-delete');
    await page.waitForSelector('#functions', { timeout: WAIT });
    await page.waitForSelector('#functions tr[data-name="other"]', { state: 'detached', timeout: WAIT });
    const left = kelp('function', 'ls');
    if (/^other\s/m.test(left)) throw new Error(`other is still listed by the CLI:\n${left}`);
    console.log('every step passed');
  } finally {
    await browser.close();
  }
})().catch((e) => { console.error(`FAILED: ${e.stack || e}`); process.exit(1); });
