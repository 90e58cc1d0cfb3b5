// The playground (/ui/) in a real browser: Debian's chromium, headless,
// driven by puppeteer-core, against a live cluster on the simulator with
// keys on (tests/e2e/playground_test.cc starts it). Pipeline `panel` is
// [[a, b, hang, slow, broken]] -> z, going on with two answers and half a
// second of grace: `hang` never answers, `slow` takes ~80 s (both cut as
// stragglers), `broken` answers HTTP 500.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import puppeteer from 'puppeteer-core';

const base = process.env.MOA_BASE_URL;  // http://127.0.0.1:PORT
const key = process.env.MOA_API_KEY;
const shots = process.env.MOA_SCREENSHOT_DIR;
const origin = new URL(base).origin;

let browser;
const requests = [];    // Every URL any page of the test asked for.
const pageErrors = [];  // Script errors of any page.

async function newPage(context) {
  const page = await (context || browser).newPage();
  page.on('request', (r) => requests.push(r.url()));
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await page.setViewport({ width: 1280, height: 800 });
  return page;
}

// WCAG 2 A and AA checks (labels, names, contrast, ...) by axe-core, run in
// the page; each violation as "rule: element".
const axeSource = fs.readFileSync(new URL(import.meta.resolve('axe-core/axe.min.js')), 'utf8');
async function accessibilityViolations(page) {
  await page.evaluate(axeSource);
  return page.evaluate(async () => {
    const result = await window.axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'wcag21aa'] });
    // The checks ran: contrast was among those that passed.
    const passed = result.passes.map((p) => p.id);
    if (!passed.includes('color-contrast')) return ['axe did not check contrast: ' + passed.join(',')];
    return result.violations.flatMap((v) => v.nodes.map((n) => v.id + ': ' + n.target.join(' ')));
  });
}

async function giveKey(page) {
  await page.waitForSelector('#key-dialog[open]');
  await page.type('#key-input', key);
  await page.click('#key-save');
  await page.waitForFunction(() => document.querySelectorAll('#pipeline option').length > 0);
}

// After a resize or a scroll: two frames, so the new layout is painted.
async function settled(page) {
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
}

// A fresh session (a context shares nothing with the others) on `hash`'s
// page, the key given.
async function openWithKey(hash = '') {
  const context = await browser.createBrowserContext();
  const page = await newPage(context);
  await page.goto(base + '/ui/' + hash, { waitUntil: 'domcontentloaded' });
  await giveKey(page);
  return { context, page };
}

async function askAndWait(page, question) {
  await page.type('#question', question);
  await page.keyboard.down('Control');
  await page.keyboard.press('Enter');  // The keyboard path: Ctrl+Enter sends.
  await page.keyboard.up('Control');
  await page.waitForFunction(() => ['done', 'failed'].includes(document.getElementById('status').textContent),
                             { timeout: 60000 });
  return page.$eval('#status', (e) => e.textContent);
}

before(async () => {
  fs.mkdirSync(shots, { recursive: true });
  browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true,
    // Root in a container has no user namespaces for chromium's sandbox.
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
  });
});

after(async () => { if (browser) await browser.close(); });

test('without a key the page asks for one and shows the refusal', async () => {
  const page = await newPage();
  await page.goto(base + '/ui/', { waitUntil: 'domcontentloaded' });
  await page.waitForSelector('#key-dialog[open]');
  assert.match(await page.$eval('#key-why', (e) => e.textContent), /missing API key/);
  await page.click('#key-cancel');
  await page.waitForSelector('#notice:not([hidden])');
  assert.match(await page.$eval('#notice', (e) => e.textContent), /refused: missing API key/);
  assert.equal(await page.$$eval('#pipeline option', (o) => o.length), 0);
  // The API behind the page refuses too.
  const r = await fetch(base + '/v1/moa/chat', { method: 'POST', body: '{}' });
  assert.equal(r.status, 401);
  // A wrong key is refused by name, forgotten, and asked for again.
  await page.click('#key-button');
  await page.type('#key-input', 'sk-not-a-key');
  await page.click('#key-save');
  await page.waitForFunction(() => document.getElementById('key-dialog').open &&
                             /incorrect API key/.test(document.getElementById('key-why').textContent));
  assert.equal(await page.evaluate(() => sessionStorage.getItem('moa.key')), null);
  await page.click('#key-cancel');
  await page.waitForFunction(() => /refused: incorrect API key/.test(document.getElementById('notice').textContent));
  await page.close();
});

test('the key is asked once and kept in the session only', async () => {
  const { context, page } = await openWithKey();
  await page.reload({ waitUntil: 'domcontentloaded' });
  await page.waitForFunction(() => document.querySelectorAll('#pipeline option').length > 0);
  assert.equal(await page.$('#key-dialog[open]'), null, 'asked again after a reload');
  assert.equal(await page.evaluate(() => localStorage.length), 0);
  assert.deepEqual(await page.cookies(), []);
  // Another session (a new context: nothing shared) is asked again.
  const other = await browser.createBrowserContext();
  const page2 = await newPage(other);
  await page2.goto(base + '/ui/', { waitUntil: 'domcontentloaded' });
  await page2.waitForSelector('#key-dialog[open]');
  await other.close();
  await context.close();
});

test('a question fills every column, marks the hanging and slow models, streams the answer, draws one bar per call', async () => {
  const { context, page } = await openWithKey();
  await page.select('#pipeline', 'panel');
  const bodies = [];
  page.on('request', (r) => { if (r.url().endsWith('/v1/moa/chat')) bodies.push(JSON.parse(r.postData())); });
  assert.equal(await askAndWait(page, 'Why is the sky blue?'), 'done');

  const columns = await page.$$eval('.column', (cs) => cs.map((c) => ({
    model: c.dataset.model, state: c.dataset.state,
    text: c.querySelector('.text').textContent, why: c.querySelector('.why').textContent })));
  assert.deepEqual(columns.map((c) => c.model), ['a', 'b', 'hang', 'slow', 'broken']);
  for (const c of columns.filter((c) => c.model === 'a' || c.model === 'b')) {
    assert.equal(c.state, 'done', JSON.stringify(c));
    assert.match(c.text, new RegExp('^\\[' + c.model + ' answer '));
  }
  for (const model of ['hang', 'slow']) {
    const c = columns.find((c) => c.model === model);
    assert.equal(c.state, 'straggler', JSON.stringify(c));
    assert.match(c.why, /^cut after \d+ ms: still running when its layer went on/);
  }
  const broken = columns.find((c) => c.model === 'broken');
  assert.equal(broken.state, 'failed', JSON.stringify(broken));
  assert.match(broken.why, /^failed: .*500/);
  assert.match(await page.$eval('#answer', (e) => e.textContent), /^\[z synthesis of 2 responses/);
  assert.match(await page.$eval('#summary', (e) => e.textContent), /first token .* total .* tokens · \$/);

  // One bar per call: five proposers and the answer.
  const bars = await page.$$eval('#timeline li', (ls) => ls.map((l) => ({
    kind: l.dataset.kind, state: l.dataset.state, text: l.textContent })));
  assert.equal(bars.length, 6, JSON.stringify(bars));
  assert.equal(bars.filter((b) => b.kind === 'answer').length, 1);
  for (const b of bars) assert.match(b.text, /start .* end /);
  const answerBar = bars.find((b) => b.kind === 'answer');
  assert.match(answerBar.text, /first token .* tokens · \$/);
  assert.match(bars.find((b) => b.text.startsWith('L1 · a')).text, /tokens · \$0\.0000/);

  // What was run, to run again: the curl line is the request the page sent.
  const curl = await page.$eval('#curl', (e) => e.textContent);
  assert.match(curl, /^curl -N http:\/\/127\.0\.0\.1:\d+\/v1\/moa\/chat/);
  assert.match(curl, /Authorization: Bearer \$MOA_API_KEY/);
  assert.ok(!curl.includes(key), 'the key is never written into the command');
  assert.ok(curl.includes(JSON.stringify(bodies[0])));
  assert.match(await page.$eval('#moa-ask', (e) => e.textContent),
               /^moa ask --orchestrator 127\.0\.0\.1:\d+ --pipeline 'panel' --show_proposals 'Why is the sky blue\?'$/);

  assert.deepEqual(await accessibilityViolations(page), []);
  await page.screenshot({ path: path.join(shots, 'playground-1280x800.png'), fullPage: false });
  await page.screenshot({ path: path.join(shots, 'playground-1280-full.png'), fullPage: true });
  // A phone-sized viewport (not isMobile: puppeteer reloads the page for that).
  await page.setViewport({ width: 390, height: 844 });
  await settled(page);
  // Nothing wider than the phone's screen but the scrollable tables.
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(overflow <= 390, 'page is ' + overflow + ' px wide on a 390 px screen');
  await page.evaluate(() => document.getElementById('run-meta').scrollIntoView());
  await settled(page);
  await page.screenshot({ path: path.join(shots, 'playground-phone.png') });
  assert.deepEqual(await accessibilityViolations(page), []);
  await context.close();
});

test('a second turn carries the conversation; replay sends the recorded seed', async () => {
  const { context, page } = await openWithKey();
  await page.select('#pipeline', 'shuffled');
  const bodies = [];
  page.on('request', (r) => { if (r.url().endsWith('/v1/moa/chat')) bodies.push(JSON.parse(r.postData())); });
  assert.equal(await askAndWait(page, 'First question'), 'done');
  const firstAnswer = await page.$eval('#answer', (e) => e.textContent);
  const note = await page.$eval('.step-note', (e) => e.textContent);
  const seed = note.match(/seed (\d+)/)[1];
  assert.equal(await askAndWait(page, 'And a follow-up'), 'done');
  assert.deepEqual(bodies[1].messages.map((m) => m.role), ['ROLE_USER', 'ROLE_ASSISTANT', 'ROLE_USER']);
  assert.equal(bodies[1].messages[1].content, firstAnswer);
  assert.equal(await page.$$eval('#conversation .turn', (t) => t.length), 4);
  const secondSeed = (await page.$eval('.step-note', (e) => e.textContent)).match(/seed (\d+)/)[1];
  const secondAnswer = await page.$eval('#answer', (e) => e.textContent);
  await page.click('#replay');
  await page.waitForFunction(() => ['done', 'failed'].includes(document.getElementById('status').textContent) &&
                             document.getElementById('replay').disabled === false, { timeout: 60000 });
  assert.equal(bodies.length, 3);
  assert.equal(bodies[2].step_seed, secondSeed);
  assert.deepEqual(bodies[2].messages, bodies[1].messages);
  assert.match(await page.$eval('.step-note', (e) => e.textContent), new RegExp('seed ' + secondSeed));
  assert.equal(await page.$eval('#answer', (e) => e.textContent), secondAnswer);
  assert.ok(seed.length > 0);
  await context.close();
});

test('operator pages: pipelines as a diagram, models with breaker and latency, the caller\'s key', async () => {
  const { context, page } = await openWithKey('#/pipelines');
  await page.waitForFunction(() => document.querySelectorAll('#pipelines-list section').length > 0);
  const panel = await page.$eval('section[aria-label="Pipeline panel"] .diagram', (d) => d.textContent);
  assert.match(panel, /step 1 · proposea, b, hang, slow/);
  assert.match(panel, /aggregatez/);
  assert.match(await page.$eval('#presets-list', (e) => e.textContent), /cheap: /);
  assert.deepEqual(await accessibilityViolations(page), []);
  await page.screenshot({ path: path.join(shots, 'pipelines-1280x800.png') });

  await page.click('a[data-page="models"]');
  await page.waitForFunction(() => !document.getElementById('page-models').hidden &&
                             document.querySelector('#models-table tr[data-model="a"]'));
  const rows = await page.$$eval('#models-table tbody tr', (rs) => Object.fromEntries(rs.map((r) => [
    r.dataset.model, [...r.querySelectorAll('td')].map((c) => c.textContent)])));
  assert.equal(rows.a[1], 'closed');
  assert.match(rows.a[2], /^\d+ ms$/);   // Sampled by the runs above.
  assert.ok(Number(rows.a[4]) >= 1);
  assert.equal(rows.a[5], '$1 / $2');
  assert.deepEqual(await accessibilityViolations(page), []);
  await page.screenshot({ path: path.join(shots, 'models-1280x800.png') });

  await page.click('a[data-page="keys"]');
  await page.waitForFunction(() => /Your key: /.test(document.getElementById('keys-caller').textContent));
  assert.match(await page.$eval('#keys-caller', (e) => e.textContent), /This replica counted: .* requests/);
  assert.deepEqual(await accessibilityViolations(page), []);
  await context.close();
});

test('every control has a label, no script failed, nothing was loaded from another origin', async () => {
  const page = await newPage();
  await page.goto(base + '/ui/', { waitUntil: 'domcontentloaded' });
  const unlabelled = await page.$$eval('input, select, textarea', (es) =>
    es.filter((e) => e.labels.length === 0 && !e.getAttribute('aria-label')).map((e) => e.id));
  assert.deepEqual(unlabelled, []);
  await page.close();
  assert.deepEqual(pageErrors, []);
  assert.ok(requests.length > 10);
  const foreign = requests.filter((u) => !u.startsWith(origin + '/') && !u.startsWith('data:'));
  assert.deepEqual(foreign, []);
});
