#!/usr/bin/env node
// Drives lb's dashboard (GET / of the admin listener) in Debian's headless
// Chromium through playwright-core, for tests/integration/test_dashboard.c
// and scripts/dashboard-screenshot. One JSON argument says what to do:
//
//   url          the dashboard ("http://127.0.0.1:PORT/" or https)
//   pin          https: the PEM certificate lb serves; Chromium trusts that
//                one key alone (--ignore-certificate-errors-spki-list), so
//                TLS is verified against it and nothing else is ignored
//   rows         ["pool/backend", ...]: wait until the page shows them
//   token        type this token into the page's token field once it asks
//                (after a 401); wrong_token: type that one first
//   traffic      "HOST:PORT" of an lb listener: open connections to it for
//                traffic_ms (each one read to its end) and watch the
//                counters move; traffic_request: bytes to send on each
//                (an HTTP request for an http listener); traffic_wave: vary
//                the pace (a screenshot's charts get a shape); steps_at_ms:
//                run the steps that long into the traffic, which goes on
//   steps        [{"click": "drain"|"disable"|"enable", "row": "pool/id",
//                  "until": STATE}, {"weight": N, "row": ..., "until": "N"}]:
//                click, then wait until the row shows it
//   reload       reload the page at the end and wait for the rows again
//   screenshot   write a PNG of the page there at the end (with traffic:
//                at its end, while the rates shown are still live)
//   wait_ms      each wait's bound (default 10000)
//   timeout_ms   the whole run's bound (default 30000)
//
// It prints one JSON object on stdout: what the page showed (every row's
// cells, the banner, the summary), what happened on the way (console
// messages, page errors, failed requests, answers of 400 and more,
// requests to another origin, dialogs, CSP violations) and what each step
// saw. The C test judges it. Exits 1 with the reason on stderr when a wait
// runs out or the browser fails; every wait is bounded.
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const net = require('net');
const { chromium } = require('playwright-core');

const opts = JSON.parse(process.argv[2] || '{}');
const TIMEOUT_MS = opts.timeout_ms || 30000;
const WAIT_MS = opts.wait_ms || 10000; // each wait's bound
const out = {
  console: [], page_errors: [], failed_requests: [], bad_responses: [], foreign_requests: [],
  dialogs: [], csp_violations: [], steps: [],
};
let browser = null;

// Bounds the whole run: closes the browser and exits 1 when it is over.
const watchdog = setTimeout(() => finish(new Error('run over ' + TIMEOUT_MS + ' ms')), TIMEOUT_MS);

async function finish(err) {
  clearTimeout(watchdog);
  if (browser) {
    const b = browser;
    browser = null;
    await Promise.race([b.close().catch(() => {}), new Promise((r) => setTimeout(r, 5000))]);
  }
  if (err) {
    process.stderr.write('dashboard.js: ' + (err.stack || err) + '\n');
    process.stdout.write(JSON.stringify(out) + '\n');
    process.exit(1);
  }
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(0);
}

// The base64 SHA-256 of the certificate's public key (SubjectPublicKeyInfo).
function spkiHash(pemPath) {
  const cert = new crypto.X509Certificate(fs.readFileSync(pemPath));
  const der = cert.publicKey.export({ type: 'spki', format: 'der' });
  return crypto.createHash('sha256').update(der).digest('base64');
}

// Every row the page shows, by "pool/backend": the text of each cell.
async function readRows(page) {
  return page.evaluate(() => {
    const rows = {};
    for (const tr of document.querySelectorAll('tr[data-backend]')) {
      const cell = (c) => {
        const td = tr.querySelector('.' + c);
        return td ? td.textContent.trim() : null;
      };
      rows[tr.dataset.pool + '/' + tr.dataset.backend] = {
        id: tr.querySelector('.c-backend .id').textContent,
        address: tr.querySelector('.c-backend .addr').textContent,
        state: tr.querySelector('.state').textContent,
        weight: cell('c-weight'), active: cell('c-active'), total: cell('c-total'),
        cps: tr.querySelector('.c-cps .rate').textContent,
        bps: tr.querySelector('.c-bps .rate').textContent,
        health: tr.querySelector('.health-ok').textContent,
        error: tr.querySelector('.health-error').textContent,
      };
    }
    return rows;
  });
}

// What the page shows besides the rows.
async function readPage(page) {
  return page.evaluate(() => {
    const text = (id) => {
      const e = document.getElementById(id);
      return e && !e.hidden ? e.textContent : '';
    };
    return {
      summary: text('summary'), banner: text('banner'), reload_error: text('reload-error'),
      token_state: text('token-state'), updated: text('updated'),
      img_elements: document.querySelectorAll('img').length,
      script_elements: document.querySelectorAll('script').length,
      session_token: sessionStorage.getItem('lb-admin-token'),
    };
  });
}

// The topmost row (in canvas pixels, 0 at the top) holding ink in the
// charts of row key, or the canvas height when none: a rate above zero in
// the window draws its peak near the top.
async function chartTops(page, key) {
  const [pool, id] = splitKey(key);
  return page.evaluate(([pool, id]) => {
    const tr = Array.from(document.querySelectorAll('tr[data-backend]'))
                   .find((t) => t.dataset.pool === pool && t.dataset.backend === id);
    const top = (sel) => {
      const c = tr.querySelector(sel + ' canvas');
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      for (let y = 0; y < c.height; y++)
        for (let x = 0; x < c.width; x++)
          if (d[(y * c.width + x) * 4 + 3] > 0) return { top: y, height: c.height };
      return { top: c.height, height: c.height };
    };
    return { cps: top('.c-cps'), bps: top('.c-bps') };
  }, [pool, id]);
}

function splitKey(key) {
  const i = key.indexOf('/');
  return [key.slice(0, i), key.slice(i + 1)];
}

function rowLocator(page, key) {
  const [pool, id] = splitKey(key);
  const q = (s) => '"' + s.replace(/[\\"]/g, '\\$&') + '"';
  return page.locator('tr[data-pool=' + q(pool) + '][data-backend=' + q(id) + ']');
}

// Polls fn until it returns a true value, at most ms: that value.
async function until(what, ms, fn) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error('waited ' + ms + ' ms for ' + what);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// One connection to host:port, read to its end: the bytes read.
function fetchOnce(host, port) {
  return new Promise((resolve) => {
    let n = 0;
    const s = net.connect({ host, port }, () => {
      if (opts.traffic_request) s.write(opts.traffic_request);
    });
    s.setTimeout(5000, () => s.destroy());
    s.on('data', (d) => { n += d.length; });
    s.on('close', () => resolve(n));
    s.on('error', () => {});
  });
}

async function waitRows(page, rows) {
  await until('rows ' + rows.join(', '), WAIT_MS, async () => {
    const have = await readRows(page);
    return rows.every((k) => have[k]);
  });
}

const sum = (rows, field) =>
  Object.values(rows).reduce((a, r) => a + Number(r[field].replace(/,/g, '')), 0);

// Opens connections to the listener for ms, watching the rows meanwhile;
// then waits until the totals shown have grown by the connections made.
async function traffic(page, ms) {
  const [host, port] = [opts.traffic.replace(/:\d+$/, ''), Number(opts.traffic.split(':').pop())];
  const before = await readRows(page);
  const seen = { cps: {}, bps: {} };
  const watch = async () => {
    const rows = await readRows(page);
    for (const [k, r] of Object.entries(rows)) {
      const cps = parseFloat(r.cps.replace(/,/g, '')) || 0;
      const bps = parseFloat(r.bps) || 0;
      seen.cps[k] = Math.max(seen.cps[k] || 0, cps);
      seen.bps[k] = Math.max(seen.bps[k] || 0, bps);
    }
  };
  let made = 0;
  const end = Date.now() + ms;
  let stepsAt = opts.steps_at_ms !== undefined ? Date.now() + opts.steps_at_ms : null;
  let lastWatch = 0;
  while (Date.now() < end) {
    await fetchOnce(host, port);
    made++;
    if (Date.now() - lastWatch > 200) { await watch(); lastWatch = Date.now(); }
    if (stepsAt !== null && Date.now() >= stepsAt) {
      stepsAt = null;
      for (const step of opts.steps || []) await runStep(page, step);
    }
    // A wave of 8 to 40 connections a second, else as fast as 20 ms apart.
    const pause = opts.traffic_wave ? 1000 / (24 + 16 * Math.sin(Date.now() / 7000)) : 20;
    await new Promise((r) => setTimeout(r, pause));
  }
  if (opts.screenshot) await page.screenshot({ path: opts.screenshot, fullPage: true });
  const want = sum(before, 'total') + made;
  await until('the totals shown to grow by ' + made, WAIT_MS, async () => {
    await watch();
    return sum(await readRows(page), 'total') === want;
  });
  const after = await readRows(page);
  const charts = {};
  for (const k of Object.keys(after)) charts[k] = await chartTops(page, k);
  out.traffic = { connections: made, before, after, max_cps: seen.cps, max_bps_value: seen.bps,
                  charts };
}

async function runStep(page, step) {
  const key = step.row;
  const row = rowLocator(page, key);
  const res = { step };
  if (step.click) {
    await row.locator('button[data-action=' + step.click + ']').click({ timeout: WAIT_MS });
  } else if (step.weight !== undefined) {
    await row.locator('input[type=number]').fill(String(step.weight), { timeout: WAIT_MS });
    await row.locator('button[data-action=weight]').click({ timeout: WAIT_MS });
  }
  const field = step.click ? 'state' : 'weight';
  await until(key + ' to show ' + field + ' ' + step.until, WAIT_MS, async () => {
    const r = (await readRows(page))[key];
    return r && r[field] === step.until;
  });
  res.row = (await readRows(page))[key];
  res.banner = (await readPage(page)).banner;
  out.steps.push(res);
}

// With a token: the page asks for it (401), refuses a wrong one, then
// shows the rows once the right one is typed in.
async function login(page) {
  const prompt = async (what) => until(what, WAIT_MS, async () => {
    const p = await readPage(page);
    return p.banner.includes('401') ? p.banner : null;
  });
  out.auth = { prompt: await prompt('the page to ask for a token') };
  const type = async (t) => {
    await page.fill('#token', t, { timeout: WAIT_MS });
    await page.click('#token-use', { timeout: WAIT_MS });
  };
  if (opts.wrong_token) {
    await type(opts.wrong_token);
    out.auth.refused = await prompt('the page to refuse the wrong token');
  }
  await type(opts.token);
}

async function main() {
  const args = [];
  if (opts.pin) args.push('--ignore-certificate-errors-spki-list=' + spkiHash(opts.pin));
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args });
  const context = await browser.newContext({ viewport: opts.viewport || { width: 1400, height: 700 } });
  await context.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__csp.push(e.violatedDirective + ' ' + e.blockedURI);
    });
  });
  const page = await context.newPage();
  const origin = new URL(opts.url).origin;
  page.on('console', (m) => out.console.push({ type: m.type(), text: m.text() }));
  page.on('pageerror', (e) => out.page_errors.push(String(e)));
  page.on('dialog', (d) => { out.dialogs.push(d.type() + ': ' + d.message()); d.dismiss(); });
  page.on('requestfailed', (r) => out.failed_requests.push(r.url() + ': ' + r.failure().errorText));
  page.on('request', (r) => {
    if (new URL(r.url()).origin !== origin) out.foreign_requests.push(r.url());
  });
  page.on('response', (r) => {
    if (r.status() >= 400) out.bad_responses.push(r.status() + ' ' + r.request().method() + ' ' +
                                                  new URL(r.url()).pathname);
  });

  const resp = await page.goto(opts.url, { timeout: WAIT_MS });
  const sec = await resp.securityDetails();
  out.document = { status: resp.status(), headers: await resp.allHeaders(),
                   tls: sec && sec.protocol ? { protocol: sec.protocol, subject: sec.subjectName }
                                            : null };
  if (opts.token) await login(page);
  if (opts.rows) await waitRows(page, opts.rows);
  if (opts.traffic) await traffic(page, opts.traffic_ms || 2500);
  if (!opts.traffic || opts.steps_at_ms === undefined)
    for (const step of opts.steps || []) await runStep(page, step);
  if (opts.reload) {
    await page.reload({ timeout: WAIT_MS });
    if (opts.rows) await waitRows(page, opts.rows);
  }
  if (opts.settle_ms) await new Promise((r) => setTimeout(r, opts.settle_ms));
  out.rows = await readRows(page);
  out.page = await readPage(page);
  out.csp_violations = await page.evaluate(() => window.__csp);
  if (opts.screenshot && !opts.traffic) await page.screenshot({ path: opts.screenshot, fullPage: true });
}

main().then(() => finish(null), (e) => finish(e));
