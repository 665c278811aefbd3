// The seed's user flow in a real browser (EMQX Webhook guide, "创建 Webhook"): log in, go to
// Data integration → Webhook → Create, fill in my_webhook on all messages and events, POST to
// the test receiver, press Test and see its 200, save, publish one MQTT message and watch the
// success count rise on the details page (live, no reload), duplicate it and find it with the
// search box, then disable and delete it.
//
// Run by run.sh, which starts hookmq and the receiver. Environment:
//   HOOKMQ_URL    dashboard, e.g. http://127.0.0.1:18083
//   MQTT_PORT     hookmq's MQTT port
//   RECEIVER_URL  the receiver, e.g. http://localhost:5000
//   SCREENSHOTS   folder for the screenshots (created)
//   CHROMIUM      the browser (default /usr/bin/chromium)

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const BASE = required('HOOKMQ_URL');
const MQTT_PORT = required('MQTT_PORT');
const RECEIVER = required('RECEIVER_URL');
const SHOTS = required('SCREENSHOTS');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const NAME = 'my_webhook';
const NOTE = 'my_webhook'; // the seed: "输入 Webhook 名称与备注 … 这里我们输入 my_webhook"

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`set ${name}`);
    process.exit(2);
  }
  return value;
}

fs.mkdirSync(SHOTS, { recursive: true });

let passed = 0;
let failed = 0;
const started = Date.now();

async function step(title, body) {
  const t0 = Date.now();
  try {
    await body();
    passed += 1;
    console.log(`  ok  ${title} (${Date.now() - t0} ms)`);
  } catch (error) {
    failed += 1;
    console.log(`  FAIL ${title} (${Date.now() - t0} ms)`);
    throw error;
  }
}

function expect(condition, message) {
  if (!condition) throw new Error(message);
}

async function received() {
  const answer = await fetch(new URL('/__received', RECEIVER));
  return answer.json();
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  // Debian's Chromium as root, on a machine without network: no sandbox, no GPU, no
  // background connections (each would be refused). launch() gives it a fresh profile.
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
context.setDefaultTimeout(10_000);
const page = await context.newPage();
const pageErrors = [];
const consoleErrors = [];
page.on('pageerror', (error) => pageErrors.push(error));
page.on('console', (message) => { if (message.type() === 'error') consoleErrors.push(message.text()); });

const row = () => page.getByTestId(`webhook-row-${NAME}`);
const successCount = async () => Number((await page.getByTestId('metric-success').textContent()).replace(/[^0-9]/g, ''));

try {
  await step('log in as admin/public and postpone the change-password prompt', async () => {
    await page.goto(`${BASE}/`);
    await page.waitForURL(/\/login/);
    await page.getByLabel('Username', { exact: true }).fill('admin');
    await page.getByLabel('Password', { exact: true }).fill('public');
    await page.getByRole('button', { name: 'Log in' }).click();
    const dialog = page.getByTestId('change-password-dialog');
    await dialog.waitFor();
    expect((await dialog.textContent()).includes('default password'), 'the prompt names the default password');
    await page.getByRole('button', { name: 'Later' }).click();
    await page.waitForURL(/\/overview$/);
    await page.getByTestId('overview-node').filter({ hasNotText: '—' }).waitFor();
  });

  await step('Data integration → Webhook shows an empty list', async () => {
    await page.getByRole('navigation').getByRole('link', { name: 'Webhook', exact: true }).click();
    await page.waitForURL(/\/webhooks$/);
    await page.getByTestId('webhooks-empty').waitFor();
  });

  await step('Create: name, note, all messages and events, POST, receiver URL', async () => {
    await page.getByTestId('webhook-create').click();
    await page.waitForURL(/\/webhooks\/create$/);
    await page.getByLabel('Name', { exact: true }).fill(NAME);
    await page.getByLabel('Note', { exact: true }).fill(NOTE);
    await page.getByTestId('trigger-all').check();
    await page.getByLabel('Method', { exact: true }).selectOption('post');
    await page.getByLabel('URL', { exact: true }).fill(RECEIVER);
    expect(await page.getByTestId('trigger-messages-panel').isHidden(), 'no message options for "all"');
  });

  await step('Test beside the URL shows the receiver’s 200', async () => {
    await page.getByRole('button', { name: 'Test', exact: true }).click();
    const result = page.getByTestId('probe-result');
    await result.getByText('Receiver answered 200').waitFor();
    expect((await result.textContent()).includes('"result":"ok"'), 'the page shows the start of the receiver’s body');
    const got = await received();
    expect(got.some((r) => r.method === 'POST' && JSON.parse(r.body).event === 'message.publish'), 'the receiver got the sample request');
    await page.screenshot({ path: path.join(SHOTS, 'webhook-form.png'), fullPage: true });
  });

  await step('Save returns to the list with my_webhook enabled', async () => {
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    await page.waitForURL(/\/webhooks$/);
    await row().waitFor();
    expect((await row().textContent()).includes(RECEIVER), 'the row shows the URL');
    expect(await row().getByRole('switch').getAttribute('aria-checked') === 'true', 'created enabled');
    await page.screenshot({ path: path.join(SHOTS, 'webhook-list.png'), fullPage: true });
  });

  await step('a published message raises the success count on the details page, live', async () => {
    const before = (await received()).length;
    await row().getByRole('link', { name: NAME }).click();
    await page.waitForURL(new RegExp(`/webhooks/detail/${NAME}$`));
    await page.getByTestId('metric-success').filter({ hasNotText: '—' }).waitFor();
    const initial = await successCount();
    await page.evaluate(() => { window.__sameDocument = true; });
    const pub = spawnSync('mosquitto_pub', ['-h', '127.0.0.1', '-p', MQTT_PORT, '-t', 't/1', '-m', 'hello'], { encoding: 'utf8', timeout: 10_000 });
    expect(pub.status === 0, `mosquitto_pub failed: ${pub.stderr || pub.error}`);
    await page.waitForFunction(
      (n) => Number(document.querySelector('[data-testid="metric-success"]').textContent.replace(/[^0-9]/g, '')) > n,
      initial, { timeout: 15_000 });
    expect(await page.evaluate(() => window.__sameDocument === true), 'the page was not reloaded');
    const got = (await received()).slice(before).map((r) => JSON.parse(r.body));
    const publish = got.find((e) => e.event === 'message.publish');
    expect(publish && publish.topic === 't/1' && publish.payload === 'hello', 'the receiver got message.publish on t/1 with "hello"');
    // One more poll so the chart has a line, then the screenshot.
    await page.waitForTimeout(2200);
    await page.screenshot({ path: path.join(SHOTS, 'webhook-details.png'), fullPage: true });
    console.log(`       success ${initial} → ${await successCount()}; receiver got ${got.map((e) => e.event).join(', ')}`);
  });

  await step('the rate chart keeps its recent points when the page is left and opened again', async () => {
    const chart = page.getByTestId('webhook-chart');
    await page.waitForFunction(() => Number(document.querySelector('[data-testid="webhook-chart"]')?.dataset.points) >= 2);
    const before = Number(await chart.getAttribute('data-points'));
    await page.getByRole('navigation').getByRole('link', { name: 'Webhook', exact: true }).click();
    await page.waitForURL(/\/webhooks$/);
    await row().getByTestId('webhook-link').click();
    await page.waitForURL(/\/webhooks\/detail\//);
    const after = Number(await page.getByTestId('webhook-chart').getAttribute('data-points'));
    expect(after >= before, `the chart came back with ${after} points, had ${before}`);
  });

  await step('Settings: edit the note, Update, and the details show it', async () => {
    await page.getByRole('link', { name: 'Settings', exact: true }).click();
    await page.waitForURL(new RegExp(`/webhooks/edit/${NAME}$`));
    expect(await page.getByLabel('Name', { exact: true }).isDisabled(), 'a webhook cannot be renamed');
    expect(await page.getByLabel('URL', { exact: true }).inputValue() === RECEIVER, 'the form shows the saved URL');
    await page.getByLabel('Note', { exact: true }).fill(`${NOTE} (edited)`);
    await page.getByRole('button', { name: 'Update', exact: true }).click();
    await page.waitForURL(new RegExp(`/webhooks/detail/${NAME}$`));
    await page.getByTestId('webhook-note').getByText(`${NOTE} (edited)`).waitFor();
  });

  await step('events the receiver refuses become dead letters; Replay all delivers them once it accepts', async () => {
    const refuse = (on) => fetch(new URL('/__refuse', RECEIVER), { method: 'POST', body: on ? 'on' : 'off' });
    await refuse(true);
    const pub = spawnSync('mosquitto_pub', ['-h', '127.0.0.1', '-p', MQTT_PORT, '-t', 't/refused', '-m', 'refused once'], { encoding: 'utf8', timeout: 10_000 });
    expect(pub.status === 0, `mosquitto_pub failed: ${pub.stderr || pub.error}`);
    const card = page.getByTestId('dead-letters');
    const rows = card.getByTestId('dead-letter-row');
    await rows.first().waitFor({ timeout: 15_000 });
    const first = await rows.first().textContent();
    expect(first.includes('400'), `the row shows the receiver's 400: ${first}`);
    const attempt = await page.getByTestId('attempt-row').first().textContent();
    expect(attempt.includes('400'), `the recent attempts show the 400: ${attempt}`);
    await card.scrollIntoViewIfNeeded();
    await page.screenshot({ path: path.join(SHOTS, 'webhook-dead-letters.png'), fullPage: true });
    await refuse(false);
    const before = (await received()).length;
    await card.getByTestId('dead-letters-replay').click();
    await card.getByTestId('dead-letters-empty').waitFor({ state: 'visible', timeout: 15_000 });
    const replayed = (await received()).slice(before).map((r) => JSON.parse(r.body));
    expect(replayed.some((e) => e.event === 'message.publish' && e.payload === 'refused once'),
      `the refused message.publish was delivered after the replay: ${replayed.map((e) => e.event).join(', ')}`);
  });

  await step('Duplicate starts a new webhook from it; the copy is saved', async () => {
    await page.getByRole('navigation').getByRole('link', { name: 'Webhook', exact: true }).click();
    await page.waitForURL(/\/webhooks$/);
    await row().getByTestId('webhook-duplicate').click();
    await page.waitForURL(/\/webhooks\/create\?from=/);
    await page.getByTestId('duplicate-notice').waitFor();
    expect(await page.getByLabel('Name', { exact: true }).inputValue() === `${NAME}-copy`, 'named after the original');
    expect(await page.getByLabel('URL', { exact: true }).inputValue() === RECEIVER, 'the URL is copied');
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    await page.waitForURL(/\/webhooks$/);
    await page.getByTestId(`webhook-row-${NAME}-copy`).waitFor();
  });

  await step('the search box keeps only the webhooks that match', async () => {
    const search = page.getByTestId('webhook-search');
    await search.fill('-copy');
    await page.waitForFunction((name) => document.querySelector(`[data-testid="webhook-row-${name}"]`)?.classList.contains('hidden'), NAME);
    expect(await page.getByTestId(`webhook-row-${NAME}-copy`).isVisible(), 'the copy matches');
    await search.fill('no such webhook');
    await page.getByTestId('webhooks-no-match').waitFor();
    await search.fill('');
    await row().waitFor();
    // The copy goes again, so the steps below see one webhook.
    await page.getByTestId(`webhook-row-${NAME}-copy`).getByRole('button', { name: 'Delete' }).click();
    const dialog = page.getByTestId('confirm-dialog');
    await dialog.waitFor();
    await dialog.getByRole('button', { name: 'Delete' }).click();
    await page.getByTestId(`webhook-row-${NAME}-copy`).waitFor({ state: 'detached' });
  });

  await step('a second URL (failover) in Advanced settings: the details list both receivers', async () => {
    await row().getByRole('link', { name: NAME, exact: true }).click();
    await page.waitForURL(new RegExp(`/webhooks/detail/${NAME}$`));
    await page.getByRole('link', { name: 'Settings', exact: true }).click();
    await page.waitForURL(new RegExp(`/webhooks/edit/${NAME}$`));
    await page.getByTestId('webhook-advanced').locator('summary').click();
    await page.getByTestId('adv-urls').fill(`${RECEIVER}/standby`);
    await page.getByTestId('adv-url_strategy').selectOption('failover');
    await page.getByRole('button', { name: 'Update', exact: true }).click();
    await page.waitForURL(new RegExp(`/webhooks/detail/${NAME}$`));
    const rows = page.getByTestId('receiver-row');
    await page.getByTestId('receivers-card').waitFor({ state: 'visible' });
    expect(await rows.count() === 2, `two receivers: ${await rows.count()}`);
    expect((await rows.nth(1).textContent()).includes(`${RECEIVER}/standby`), 'the second URL is listed');
    const before = Number((await rows.first().locator('td').nth(3).textContent()).replace(/[^0-9]/g, ''));
    const pub = spawnSync('mosquitto_pub', ['-h', '127.0.0.1', '-p', MQTT_PORT, '-t', 't/failover', '-m', 'to the first'], { encoding: 'utf8', timeout: 10_000 });
    expect(pub.status === 0, `mosquitto_pub failed: ${pub.stderr || pub.error}`);
    // Failover: the first URL answers, so it takes the events (its count rises, live).
    await page.waitForFunction((count) => {
      const cell = document.querySelectorAll('[data-testid="receiver-row"]')[0]?.querySelectorAll('td')[3];
      return Number((cell?.textContent ?? '').replace(/[^0-9]/g, '')) > count;
    }, before, { timeout: 15_000 });
    await page.getByTestId('receivers-card').scrollIntoViewIfNeeded();
    await page.screenshot({ path: path.join(SHOTS, 'webhook-receivers.png'), fullPage: true });
  });

  await step('disable it with the switch in the list', async () => {
    await page.getByRole('navigation').getByRole('link', { name: 'Webhook', exact: true }).click();
    await page.waitForURL(/\/webhooks$/);
    const toggle = row().getByRole('switch', { name: `Enable ${NAME}` });
    await toggle.click();
    await page.waitForFunction(
      (name) => document.querySelector(`[data-testid="webhook-row-${name}"] [data-testid="webhook-status"]`)?.textContent === 'Disabled',
      NAME);
    expect(await toggle.getAttribute('aria-checked') === 'false', 'the switch is off');
  });

  await step('delete it (confirmed) and the list is empty', async () => {
    await row().getByRole('button', { name: 'Delete' }).click();
    const dialog = page.getByTestId('confirm-dialog');
    await dialog.waitFor();
    await dialog.getByRole('button', { name: 'Delete' }).click();
    await row().waitFor({ state: 'detached' });
    await page.getByTestId('webhooks-empty').waitFor();
  });

  await step('Monitoring → Nodes lists this node with its connections (a single node)', async () => {
    await page.getByTestId('nav-nodes').click();
    await page.waitForURL(/\/nodes$/);
    const rows = page.getByTestId('node-row');
    await rows.first().waitFor();
    expect(await rows.count() === 1, 'one node');
    const text = await rows.first().textContent();
    expect(/running/.test(text), `the row says running: ${text}`);
    await page.getByTestId('nodes-cluster').getByText('A single node').waitFor();
  });

  await step('Monitoring → Alarms shows a webhook whose receiver is down, and its history once it is deleted', async () => {
    await page.getByTestId('nav-webhook').click();
    await page.waitForURL(/\/webhooks$/);
    await page.getByTestId('webhook-create').first().click();
    await page.waitForURL(/\/webhooks\/create$/);
    await page.getByLabel('Name', { exact: true }).fill('nobody_home');
    await page.getByTestId('trigger-messages').check();
    // Port 9 (discard): nothing listens there, so the first health check finds it down.
    await page.getByLabel('URL', { exact: true }).fill('http://127.0.0.1:9/');
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    await page.waitForURL(/\/webhooks$/);
    await page.getByTestId('nav-alarms').click();
    await page.waitForURL(/\/alarms$/);
    const table = page.getByTestId('alarms-table');
    // Refreshing the list until the alarm shows: hookmq checks webhooks once a second.
    for (let tries = 0; !(await table.getByText('action:http:nobody_home', { exact: true }).isVisible()); tries++) {
      expect(tries < 50, 'the alarm is listed');
      await page.getByRole('button', { name: 'Refresh', exact: true }).click();
      await page.waitForTimeout(200);
    }
    await page.screenshot({ path: path.join(SHOTS, 'alarms.png'), fullPage: true });
    await page.getByTestId('nav-webhook').click();
    const doomed = page.getByTestId('webhook-row-nobody_home');
    await doomed.getByRole('button', { name: 'Delete' }).click();
    await page.getByTestId('confirm-dialog').getByRole('button', { name: 'Delete' }).click();
    await doomed.waitFor({ state: 'detached' });
    await page.getByTestId('nav-alarms').click();
    await page.getByTestId('alarms-history').click();
    const history = page.getByTestId('alarms-table');
    // As above: the alarm clears at the next check after the webhook goes.
    for (let tries = 0; !(await history.getByText('action:http:nobody_home', { exact: true }).isVisible()); tries++) {
      expect(tries < 50, 'the cleared alarm is in the history');
      await page.getByRole('button', { name: 'Refresh', exact: true }).click();
      await page.waitForTimeout(200);
    }
  });

  await step('a 400 from the API is shown at its field (invalid topic filter)', async () => {
    await page.getByTestId('nav-webhook').click();
    await page.waitForURL(/\/webhooks$/);
    await page.getByTestId('webhook-create').first().click();
    await page.waitForURL(/\/webhooks\/create$/);
    await page.getByLabel('Name', { exact: true }).fill('bad_filter');
    await page.getByTestId('trigger-messages').check();
    await page.getByTestId('topic-input').first().fill('a/#/b');
    await page.getByLabel('URL', { exact: true }).fill(RECEIVER);
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    const error = page.getByTestId('topic-list').getByRole('alert');
    await error.getByText('is not a valid topic filter').waitFor();
    expect(await page.getByTestId('topic-input').first().getAttribute('aria-invalid') === 'true', 'the topic input is marked invalid');
    expect(/\/webhooks\/create$/.test(page.url()), 'still on the form');
  });

  await step('no uncaught error in the page', async () => {
    expect(pageErrors.length === 0, `page errors: ${pageErrors.map((e) => e.stack ?? e).join('\n')}`);
  });
} catch (error) {
  console.log(`\n${error.stack ?? error}`);
  console.log(`page: ${page.url()}`);
  for (const e of pageErrors) console.log(`page error: ${e.stack ?? e}`);
  for (const e of consoleErrors) console.log(`console: ${e}`);
  await page.screenshot({ path: path.join(SHOTS, 'failure.png'), fullPage: true }).catch(() => {});
  console.log(`screenshot of the failure: ${path.join(SHOTS, 'failure.png')}`);
} finally {
  await browser.close();
}

console.log(`browser test took ${((Date.now() - started) / 1000).toFixed(1)} s; screenshots in ${SHOTS}`);
console.log(`browser: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
