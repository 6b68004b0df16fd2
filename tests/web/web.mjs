// web.mjs - the web page at / in Debian's Chromium, headless, driven by
// playwright-core (tests/web.test.sh starts the daemons and passes them in
// the environment). Each check prints "ok NAME" or "FAIL NAME: why"; the
// last line is "N passed, N failed".
//
// Environment: BASE (a daemon without keys), KEYED (one with keys),
// GEN_KEY, ADMIN_KEY, PNGS (a folder of small PNG files), SHOTS (where the
// screenshots go), PLAYWRIGHT (playwright-core's folder).
import { createRequire } from 'node:module';
import { readdirSync } from 'node:fs';
import path from 'node:path';

const env = process.env;
const { chromium } = createRequire(import.meta.url)(env.PLAYWRIGHT);
const pngs = readdirSync(env.PNGS).filter((f) => f.endsWith('.png')).sort().map((f) => path.join(env.PNGS, f));
const LONG = 120000; // a bound on a hang, not a speed test

let passed = 0, failed = 0;
async function check(name, fn) {
  try {
    await fn();
    console.log('ok ' + name);
    passed++;
  } catch (e) {
    console.log(`FAIL ${name}: ${String(e.message || e).split('\n').slice(0, 4).join(' | ')}`);
    failed++;
  }
}
function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

// A fresh profile (--user-data-dir) of its own.
const browser = await chromium.launchPersistentContext(env.PROFILE, {
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

// A tab of its own (sessionStorage is per tab), every request it makes noted.
async function open(base, viewport = { width: 1280, height: 900 }) {
  const page = await browser.newPage();
  await page.setViewportSize(viewport);
  page.requests = [];
  page.on('request', (r) => page.requests.push(r.url()));
  page.on('dialog', (d) => d.accept());
  page.on('pageerror', (e) => console.log('  page error: ' + e.message));
  await page.goto(base + '/');
  await page.waitForSelector('body[data-ready="1"]', { timeout: LONG });
  return page;
}
const shot = (page, name) => page.screenshot({ path: path.join(env.SHOTS, name + '.png'), fullPage: true });
const visible = (page, sel) => page.locator(sel).first().waitFor({ state: 'visible', timeout: LONG });

const caps = await (await fetch(env.BASE + '/v1/capabilities')).json();
const page = await open(env.BASE);

// ---- generate, unconditional --------------------------------------------
await check('page_served_with_forms_from_capabilities', async () => {
  assert((await page.title()) === 'codid', 'title');
  const max = await page.getAttribute('#gen-steps', 'max');
  assert(Number(max) === caps.limits.max_steps, `steps max ${max}, capabilities say ${caps.limits.max_steps}`);
  const n = await page.getAttribute('#gen-n', 'max');
  assert(Number(n) === caps.limits.max_n, `n max ${n}`);
  const pre = await page.$$eval('#gen-preprocess option', (o) => o.map((x) => x.value));
  assert(JSON.stringify(pre) === JSON.stringify(caps.preprocesses), 'preprocesses ' + pre);
});

await check('generate_unconditional', async () => {
  await page.fill('#gen-steps', '3');
  await page.fill('#gen-seed', '5');
  await page.fill('#gen-n', '2');
  await page.click('#gen-submit');
  await visible(page, '#gen-results figure');
  const figs = await page.locator('#gen-results figure').count();
  assert(figs === 2, `${figs} figures for n = 2`);
  const t = await page.textContent('#gen-timings');
  assert(/inference \d/.test(t) && /seed 5/.test(t), 'timings: ' + t);
  const href = await page.getAttribute('#gen-results a[download]', 'href');
  assert(href.startsWith('data:image/png;base64,iVBOR'), 'download link ' + href.slice(0, 40));
  const curl = await page.inputValue('#gen-curl');
  assert(curl.includes('-F steps=3') && curl.includes('-F seed=5') && curl.includes('/v1/generate'), curl);
  const rendering = await page.$eval('#gen-results img', (i) => getComputedStyle(i).imageRendering);
  assert(rendering === 'pixelated', 'image-rendering ' + rendering);
  await shot(page, 'generate');
});

await check('bad_steps_error_beside_its_field', async () => {
  await page.fill('#gen-steps', String(caps.limits.max_steps + 1));
  await page.click('#gen-submit');
  await visible(page, '#gen-steps-error');
  const text = await page.textContent('#gen-steps-error');
  assert(text.includes('max_steps'), text);
  assert((await page.getAttribute('#gen-steps', 'aria-invalid')) === 'true', 'aria-invalid');
  assert((await page.getAttribute('#gen-steps', 'aria-describedby')) === 'gen-steps-error', 'describedby');
  const inField = await page.$eval('#gen-steps-error', (p) => p.closest('.field').contains(document.querySelector('#gen-steps')));
  assert(inField, 'the message is not beside the field');
  await page.fill('#gen-steps', '3');
});

await check('429_shows_retry_after', async () => {
  await page.route('**/v1/generate', (route) => route.fulfill({
    status: 429, headers: { 'Content-Type': 'application/problem+json', 'Retry-After': '7' },
    body: JSON.stringify({ type: 'about:blank', title: 'Too Many Requests', status: 429, detail: 'the generation queue is full (queue_max 64 requests waiting)' }),
  }));
  await page.click('#gen-submit');
  await visible(page, '#notice');
  const text = await page.textContent('#notice');
  assert(text.includes('7 s') && text.includes('Retry-After'), text);
  await page.unroute('**/v1/generate');
});

// ---- datasets -------------------------------------------------------------
await check('dataset_upload_preview', async () => {
  await page.click('nav button[data-view=datasets]');
  await page.setInputFiles('#ds-files', pngs);
  assert((await page.locator('#ds-picked img').count()) === pngs.length, 'picked thumbnails');
  await page.fill('#ds-name', 'web-set');
  await page.click('#ds-upload button[type=submit]');
  await visible(page, 'tr[data-dataset="web-set"]');
  const count = await page.textContent('tr[data-dataset="web-set"] td');
  assert(Number(count) === pngs.length, `count ${count}, uploaded ${pngs.length}`);
  await page.click('tr[data-dataset="web-set"] button:has-text("Preview")');
  await visible(page, '#ds-preview img');
  await page.waitForFunction(() => document.querySelector('#ds-preview img').naturalWidth > 0);
  await shot(page, 'datasets');
});

await check('dataset_bad_name_error_beside_field', async () => {
  await page.setInputFiles('#ds-files', pngs.slice(0, 1));
  await page.fill('#ds-name', '1-not-a-name');
  await page.click('#ds-upload button[type=submit]');
  await visible(page, '#ds-name-error');
});

// ---- jobs: one that finishes, one queued behind a long one, cancels -------
await check('job_from_form_progress_to_the_end', async () => {
  await page.click('nav button[data-view=jobs]');
  const kinds = await page.$$eval('#job-kind option', (o) => o.map((x) => x.value));
  assert(JSON.stringify(kinds) === JSON.stringify(['distill', 'teacher', 'cm2']), 'kinds ' + kinds);
  await page.selectOption('#job-kind', 'distill');
  await page.selectOption('#job-dataset', 'web-set');
  await page.selectOption('#job-task', 'sr');
  await page.selectOption('#job-task-factor', '4');
  await page.selectOption('#job-adapter_kind', 'lite');
  await page.fill('#job-steps', '6');
  await page.fill('#job-batch_size', '2');
  await page.fill('#job-name', 'web-sr4');
  await page.click('#job-submit');
  await page.waitForSelector('#job-live-status[data-status=succeeded]', { timeout: LONG });
  const stats = await page.textContent('#job-live-stats');
  assert(stats.includes('step 6 of 6') && /it\/s/.test(stats) && /ETA/.test(stats), stats);
  assert((await page.$eval('#job-progress', (p) => p.value === p.max)), 'progress bar not full');
  const inked = await page.$eval('#loss-chart', (c) => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
    return n;
  });
  assert(inked > 200, `loss chart drew ${inked} pixels`);
  await visible(page, '#job-adapter-link');
  await shot(page, 'jobs');
});

await check('job_queue_position_and_cancel', async () => {
  await page.fill('#job-steps', '1000000');
  await page.fill('#job-name', 'web-long1');
  await page.click('#job-submit');
  await page.waitForSelector('#job-live-status[data-status=running]', { timeout: LONG });
  await page.fill('#job-name', 'web-long2');
  await page.click('#job-submit');
  await page.waitForSelector('#job-live-status[data-status=queued]', { timeout: LONG });
  const second = await page.textContent('#job-live-title');
  const id = second.replace(/\D/g, '');
  const pos = await page.textContent(`tr[data-job="${id}"] td:nth-of-type(3)`);
  assert(pos === '1', 'queue position ' + pos);
  await page.click('#job-cancel');
  await page.waitForSelector('#job-live-status[data-status=cancelled]', { timeout: LONG });
  const running = Number(id) - 1;
  await page.click(`tr[data-job="${running}"] button:has-text("Cancel")`);
  await page.waitForFunction((t) => document.querySelector('#job-live-title').textContent === t, 'Job #' + running);
  await page.waitForSelector('#job-live-status[data-status=cancelled]', { timeout: LONG });
  await page.waitForSelector(`tr[data-job="${running}"] td.status:has-text("cancelled")`, { timeout: LONG });
});

// ---- generate with the adapter the job made --------------------------------
await check('generate_with_adapter', async () => {
  await page.click(`tr[data-job="1"] button:has-text("Watch")`);
  await visible(page, '#job-adapter-link');
  await page.click('#job-adapter-link');
  await page.waitForFunction(() => document.querySelector('#gen-adapter').selectedOptions[0].textContent.startsWith('web-sr4'));
  assert(await page.isHidden('#gen-eta-field'), 'eta offered for a CoDi adapter');
  assert(await page.isVisible('#gen-stochastic-field'), 'stochastic not offered for a CoDi adapter');
  await page.check('#gen-stochastic');
  const info = await page.textContent('#gen-adapter-info');
  assert(info.includes('task sr') && info.includes('lite') && info.includes('codi'), info);
  assert((await page.getAttribute('#gen-steps', 'max')) === '50', 'steps max for n_grid 50');
  await page.click('#gen-take');
  await visible(page, '#gen-source');
  await page.selectOption('#gen-preprocess', 'task');
  await page.fill('#gen-n', '1');
  await page.fill('#gen-steps', '2');
  await page.click('#gen-submit');
  await page.waitForSelector('#gen-results figure figcaption:has-text("condition")', { timeout: LONG });
  assert((await page.locator('#gen-results figure').count()) === 2, 'condition and one image');
  const curl = await page.inputValue('#gen-curl');
  assert(curl.includes('-F adapter=web-sr4') && curl.includes('-F image=@image.png'), curl);
  assert(curl.includes('stochastic=true'), 'the stochastic choice in the curl command: ' + curl);
  await shot(page, 'generate-adapter');
});

await check('adapter_card', async () => {
  await page.click('nav button[data-view=adapters]');
  await visible(page, 'article[data-adapter="web-sr4"]');
  const card = page.locator('article[data-adapter="web-sr4"]');
  assert((await card.textContent()).includes('lite'), 'kind on the card');
  await card.locator('summary').click();
  assert((await card.locator('.recipe').textContent()).includes('batch_size'), 'recipe');
  await card.locator('button:has-text("Draw samples")').click();
  await card.locator('.grid3 figure').nth(11).waitFor({ timeout: LONG });
  await shot(page, 'adapters');
});

await check('keyboard_alone_switches_views', async () => {
  await page.click('nav button[data-view=generate]');
  await page.focus('nav button[data-view=generate]');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Tab');
  const focused = await page.evaluate(() => document.activeElement.dataset.view);
  assert(focused === 'datasets', 'focus on ' + focused);
  await page.keyboard.press('Enter');
  assert(await page.isVisible('#view-datasets'), 'Enter did not open Datasets');
  const unlabelled = await page.$$eval('input:not([type=hidden]), select, textarea', (els) =>
    els.filter((e) => !(e.labels && e.labels.length)).map((e) => e.id || e.name));
  assert(unlabelled.length === 0, 'controls without a label: ' + unlabelled);
});

await check('no_request_leaves_the_origin', async () => {
  const foreign = page.requests.filter((u) => !u.startsWith(env.BASE + '/') && !u.startsWith('data:') && !u.startsWith('blob:'));
  assert(foreign.length === 0, foreign.slice(0, 3).join(' '));
});

await check('phone_width', async () => {
  const phone = await open(env.BASE, { width: 390, height: 844 });
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert(overflow <= 0, `${overflow} px wider than the screen`);
  await shot(phone, 'generate-phone');
  await phone.close();
});

// ---- keys -------------------------------------------------------------------
await check('keys_401_without_then_with_a_key', async () => {
  const p = await open(env.KEYED);
  await visible(p, '#notice');
  const text = await p.textContent('#notice');
  assert(text.startsWith('Not signed in'), text);
  await p.fill('#api-key', env.GEN_KEY);
  await p.click('#key-form button[type=submit]');
  await p.waitForFunction(() => document.querySelector('#model-line').textContent.includes('model'));
  assert(await p.isHidden('#notice'), 'notice still shown');
  assert((await p.evaluate(() => sessionStorage.getItem('codid-api-key'))) === env.GEN_KEY, 'key not in sessionStorage');
  await p.fill('#gen-steps', '2');
  await p.click('#gen-submit');
  await visible(p, '#gen-results figure');
  // a generate key may not delete: 403 said plainly
  await p.click('nav button[data-view=datasets]');
  await p.setInputFiles('#ds-files', pngs.slice(0, 2));
  await p.fill('#ds-name', 'keyed-set');
  await p.click('#ds-upload button[type=submit]');
  await visible(p, 'tr[data-dataset="keyed-set"]');
  await p.click('tr[data-dataset="keyed-set"] button:has-text("Delete")');
  await visible(p, '#ds-list-error');
  const denied = await p.textContent('#ds-list-error');
  assert(denied.startsWith('Not allowed') && denied.includes('admin'), denied);
  await shot(p, 'keys-403');
  // an admin key may
  await p.fill('#api-key', env.ADMIN_KEY);
  await p.click('#key-form button[type=submit]');
  await p.click('nav button[data-view=datasets]');
  await visible(p, 'tr[data-dataset="keyed-set"]');
  await p.click('tr[data-dataset="keyed-set"] button:has-text("Delete")');
  await p.waitForSelector('tr[data-dataset="keyed-set"]', { state: 'detached', timeout: LONG });
  await p.close();
});

await browser.close();
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
