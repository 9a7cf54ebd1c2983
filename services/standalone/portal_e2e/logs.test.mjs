// Browser tests of the portal's delivery-state pages (waiting deliveries
// on the endpoint page, the message logs: search, filters,
// attempts, paging), driven by services/standalone/portal_logs_browser_test.go
// (go test).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run these tests through go test (portal_logs_browser_test.go)`);
  return v;
};
const LINK = env("PORTAL_LINK");
const BASE = env("PORTAL_BASE");
const EP_ID = env("FAILING_ENDPOINT_ID");
const IDS = JSON.parse(env("MESSAGE_IDS")); // every message, oldest first
const FAILED = JSON.parse(env("FAILED_IDS")); // the job.failed ones, published after BOUNDARY
const BOUNDARY = new Date(env("BOUNDARY"));
const ARTIFACTS = env("ARTIFACTS_DIR");
// The viewer's zone is Europe/Berlin: December times show CET.
const ZONE = /\b(CET|GMT\+1)\b/;
const PAGE = 25;

let browser, context, page;
const pageErrors = [];
const contextOptions = { viewport: { width: 1280, height: 900 }, timezoneId: "Europe/Berlin", locale: "en-GB" };

// shot saves the page at desktop and phone size.
async function shot(p, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await p.screenshot({ path: join(ARTIFACTS, `logs-${name}.png`), fullPage: true });
  const size = p.viewportSize();
  await p.setViewportSize({ width: 390, height: 844 });
  await p.screenshot({ path: join(ARTIFACTS, `logs-${name}-phone.png`), fullPage: true });
  await p.setViewportSize(size);
}

async function newPage(ctx) {
  const p = await ctx.newPage();
  p.on("pageerror", (e) => { pageErrors.push(String(e)); console.log("page error:", e); });
  p.setDefaultTimeout(15000);
  return p;
}

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  context = await browser.newContext(contextOptions);
  page = await newPage(context);
  const resp = await page.goto(LINK);
  assert.equal(resp.status(), 200);
});

after(async () => {
  await browser?.close();
  assert.deepEqual(pageErrors, [], "no script errors on the pages");
});

// berlin writes a time as a datetime-local input takes it, in the viewer's zone.
function berlin(d) {
  return new Intl.DateTimeFormat("sv-SE", { timeZone: "Europe/Berlin", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" }).format(d).replace(" ", "T");
}

test("the failing endpoint's page lists its held deliveries with next attempt times", async () => {
  await page.goto(new URL("/portal/#/ep/" + encodeURIComponent(EP_ID), BASE).href);
  const panel = page.locator("section.waiting");
  await panel.locator("tr.delivery-row").first().waitFor();
  assert.equal((await panel.locator("h3").textContent()).trim(), `Waiting deliveries (${IDS.length})`);
  const rows = panel.locator("tr.delivery-row");
  assert.equal(await rows.count(), IDS.length);
  assert.equal(await panel.locator("tr.delivery-row:visible").count(), 10, "the first 10 shown");
  await shot(page, "endpoint-waiting");
  await panel.getByRole("button", { name: `Show all ${IDS.length} waiting` }).click();
  assert.equal(await panel.locator("tr.delivery-row:visible").count(), IDS.length);
  const shown = await rows.evaluateAll((trs) => trs.map((tr) => ({
    id: tr.getAttribute("data-message-id"),
    state: tr.getAttribute("data-state"),
    next: tr.querySelector("td.next-attempt time")?.textContent || "",
    nextAt: tr.querySelector("td.next-attempt time")?.getAttribute("datetime") || "",
  })));
  assert.deepEqual(shown.map((r) => r.id).sort(), [...IDS].sort(), "each message's delivery once");
  for (const r of shown) {
    assert.ok(["retrying", "put_off"].includes(r.state), `delivery of ${r.id} is ${r.state}, want retrying or put_off`);
    assert.match(r.next, ZONE, `next attempt of ${r.id} in the viewer's zone`);
    assert.ok(Date.parse(r.nextAt) > Date.now(), `next attempt of ${r.id} (${r.nextAt}) is ahead`);
  }
});

test("a held delivery whose next attempt time has passed shows as due now, not a past time", async () => {
  // The viewer's clock three hours on: every next attempt (an hour ahead) has passed.
  const later = await browser.newContext(contextOptions);
  await later.addCookies(await context.cookies());
  await later.clock.setFixedTime(new Date(Date.now() + 3 * 3600 * 1000));
  const p = await newPage(later);
  await p.goto(new URL("/portal/#/ep/" + encodeURIComponent(EP_ID), BASE).href);
  const panel = p.locator("section.waiting");
  await panel.locator("tr.delivery-row").first().waitFor();
  await panel.getByRole("button", { name: `Show all ${IDS.length} waiting` }).click();
  const cells = await panel.locator("tr.delivery-row td.next-attempt").evaluateAll((tds) => tds.map((td) => ({
    text: td.textContent, times: td.querySelectorAll("time").length,
  })));
  assert.equal(cells.length, IDS.length);
  for (const c of cells) {
    assert.equal(c.text, "due now, waiting for a worker");
    assert.equal(c.times, 0, "no past time shown as the next attempt");
  }
  const log = p.locator("section.endpoint-log");
  await log.locator("tr.message-row").first().waitFor();
  const logCells = await log.locator("tr.message-row td.next-attempt").allTextContents();
  assert.equal(logCells.length, PAGE);
  assert.deepEqual(new Set(logCells), new Set(["due now, waiting for a worker"]));
  await shot(p, "endpoint-due");
  await later.close();
});

async function openMessages() {
  await page.goto(new URL("/portal/#/messages", BASE).href);
  await page.getByRole("heading", { name: "Messages" }).waitFor();
  await page.locator("tr.message-row").first().waitFor();
}
function rowIDs(scope = page) {
  return scope.locator("tr.message-row").evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-message-id")));
}
// submit runs the log's search with its filters as filled, and waits for
// the list the answer shows.
async function submit(scope, check) {
  const done = page.waitForResponse((r) => /\/api\/(messages|endpoints\/[^/]+\/message-log)\?/.test(r.url()) && (!check || check(r.url())));
  await scope.getByRole("button", { name: "Search" }).click();
  await done;
  await page.waitForFunction(() => !document.querySelector(".message-log .loading"));
}
async function searchFor(term, scope = page) {
  await scope.getByLabel("Message id, webhook-id or job id").fill(term);
  await submit(scope, (u) => u.includes(encodeURIComponent(term)));
}

test("message search by id and by job id finds exactly the one message", async () => {
  await openMessages();
  await searchFor(IDS[17]);
  await page.locator("tr.message-row").first().waitFor();
  assert.deepEqual(await rowIDs(), [IDS[17]]);
  const row = page.locator("tr.message-row");
  assert.match(await row.locator("td[data-label=State]").textContent(), /Retrying|Put off/);
  assert.match(await row.locator("time").textContent(), ZONE);
  await shot(page, "messages-search");

  await searchFor("job_42");
  await page.waitForFunction((id) => {
    const trs = document.querySelectorAll("tr.message-row");
    return trs.length === 1 && trs[0].getAttribute("data-message-id") === id;
  }, IDS[42]);
  assert.deepEqual(await rowIDs(), [IDS[42]]);

  await searchFor("job_does_not_exist");
  await page.locator(".message-log p.empty").waitFor();
  assert.equal(await page.locator("tr.message-row").count(), 0);

  // The row links to the message's page, with its delivery to the endpoint.
  await searchFor(IDS[5]);
  await page.locator(`tr.message-row a[href="#/msg/${encodeURIComponent(IDS[5])}"]`).click();
  await page.locator("tr.delivery-row").first().waitFor();
  assert.equal(await page.locator("tr.delivery-row").count(), 1);
  assert.equal(await page.locator(`tr.delivery-row a[href="#/ep/${encodeURIComponent(EP_ID)}"]`).count(), 1);
  await shot(page, "message");
});

// expandAttempts finds the first message (attempted before the endpoint
// was put off) in the log in scope, opens its attempts by keyboard,
// checks them against the attempts API, closes and opens them again.
async function expandAttempts(scope) {
  await searchFor(IDS[0], scope);
  const row = scope.locator("tr.message-row");
  assert.deepEqual(await rowIDs(scope), [IDS[0]]);
  const id = IDS[0];
  const count = Number(await row.locator("td.attempts").textContent());
  assert.ok(count > 0, `${id} has an attempt`);
  const toggle = row.getByRole("button", { name: `Attempts of ${id}` });
  assert.equal(await toggle.getAttribute("aria-expanded"), "false");
  await toggle.focus();
  await page.keyboard.press("Enter");
  const detail = scope.locator("#" + (await toggle.getAttribute("aria-controls")));
  await detail.locator("li.attempt-item").first().waitFor();
  assert.equal(await toggle.getAttribute("aria-expanded"), "true");
  const items = await detail.locator("li.attempt-item").evaluateAll((lis) => lis.map((li) => ({
    id: li.getAttribute("data-attempt-id"),
    href: li.querySelector("a").getAttribute("href"),
    label: li.querySelector("a").textContent,
    time: li.querySelector("time")?.textContent || "",
    outcome: li.querySelector(".outcome").textContent,
  })));
  assert.equal(items.length, count, `the row's ${count} attempts listed`);
  const api = await page.evaluate(async (m) => (await (await fetch(`api/messages/${encodeURIComponent(m)}/attempts`)).json()).data, id);
  assert.deepEqual(items.map((a) => a.id).sort(), api.map((a) => a.id).sort(), "the attempts the API has");
  items.forEach((a, i) => {
    assert.equal(a.href, "#/attempt/" + encodeURIComponent(a.id));
    assert.equal(a.label, `Attempt ${i + 1}`);
    assert.match(a.time, ZONE);
    assert.equal(a.outcome, "HTTP 500");
  });
  // Space closes it again.
  await page.keyboard.press("Space");
  assert.equal(await toggle.getAttribute("aria-expanded"), "false");
  assert.ok(await detail.isHidden());
  await page.keyboard.press("Enter");
  await detail.locator("li.attempt-item").first().waitFor();
  return { id, detail, items };
}

test("a message row expands to its attempts, by keyboard, each linking to its page", async () => {
  await openMessages();
  const { detail, items } = await expandAttempts(page);
  await shot(page, "messages-attempts");
  await detail.locator("li.attempt-item a").first().click();
  await page.locator("dd.attempt-number").waitFor();
  assert.equal(await page.locator("dd.attempt-number").textContent(), "Attempt 1 of this delivery");
  assert.ok(page.url().endsWith("#/attempt/" + encodeURIComponent(items[0].id)));
});

// pageThrough pages Older to the end and Newer back to the first in the
// log in scope, and returns the pages.
async function pageThrough(scope) {
  const older = scope.getByRole("button", { name: "Older →" });
  const newer = scope.getByRole("button", { name: "← Newer" });
  assert.ok(await newer.isDisabled(), "no newer page before the first");
  const changed = async (click) => {
    const before = JSON.stringify(await rowIDs(scope));
    await click.click();
    await scope.locator(".message-log").evaluate((log, b) => new Promise((resolve) => {
      const ok = () => {
        const ids = Array.from(log.querySelectorAll("tr.message-row")).map((tr) => tr.getAttribute("data-message-id"));
        return ids.length && JSON.stringify(ids) !== b;
      };
      if (ok()) return resolve();
      new MutationObserver((_, obs) => { if (ok()) { obs.disconnect(); resolve(); } }).observe(log, { childList: true, subtree: true });
    }), before);
  };
  const pages = [await rowIDs(scope)];
  while (!(await older.isDisabled())) {
    await changed(older);
    pages.push(await rowIDs(scope));
    assert.ok(pages.length <= 20, "paging ends");
  }
  for (let i = pages.length - 2; i >= 0; i--) {
    await changed(newer);
    assert.deepEqual(await rowIDs(scope), pages[i], `page ${i + 1} again`);
  }
  assert.ok(await newer.isDisabled(), "no newer page before the first");
  return pages;
}
function pageSizes(n) {
  const out = [];
  for (; n > 0; n -= PAGE) out.push(Math.min(n, PAGE));
  return out;
}

test(`paging through all ${IDS.length} messages, ${PAGE} a page, reaches each exactly once, and back`, async () => {
  await openMessages();
  const pages = await pageThrough(page);
  assert.deepEqual(pages.map((p) => p.length), pageSizes(IDS.length));
  const all = pages.flat();
  assert.equal(all.length, IDS.length, "exact row count");
  assert.equal(new Set(all).size, IDS.length, "no message twice");
  assert.deepEqual(all, [...IDS].reverse(), "each message, newest first");
  await shot(page, "messages");
});

test("the message log filters by event type, state and time range", async () => {
  await openMessages();
  const types = page.getByLabel("Event type");
  await page.waitForFunction(() => Array.from(document.querySelectorAll("select[name=event_type] option")).some((o) => o.value === "job.failed"));
  assert.ok((await types.locator("option").allTextContents()).includes("job.completed"), "the select lists the catalog");
  await types.selectOption("job.failed");
  await submit(page, (u) => u.includes("event_type=job.failed"));
  assert.deepEqual(await rowIDs(), [...FAILED].reverse(), "exactly the job.failed messages");

  await page.getByLabel("State").selectOption("held");
  await submit(page, (u) => u.includes("state=held") && u.includes("event_type=job.failed"));
  assert.deepEqual(await rowIDs(), [...FAILED].reverse(), "all of them waiting");
  await page.getByLabel("State").selectOption("succeeded");
  await submit(page, (u) => u.includes("state=succeeded"));
  await page.locator(".message-log p.empty").waitFor();
  assert.equal(await page.locator("tr.message-row").count(), 0, "none succeeded");
  await page.getByLabel("State").selectOption("");
  await types.selectOption("");

  // From the boundary: the job.failed ones, published after it.
  await page.getByLabel("From").fill(berlin(BOUNDARY));
  await submit(page, (u) => u.includes("since=" + encodeURIComponent(BOUNDARY.toISOString())));
  assert.deepEqual(await rowIDs(), [...FAILED].reverse(), "since the boundary: the messages after it");
  await shot(page, "messages-filtered");
  // To the boundary: the job.completed ones, newest first.
  await page.getByLabel("From").fill("");
  await page.getByLabel("To").fill(berlin(BOUNDARY));
  await submit(page, (u) => u.includes("until=" + encodeURIComponent(BOUNDARY.toISOString())));
  const completed = IDS.filter((id) => !FAILED.includes(id));
  assert.deepEqual(await rowIDs(), [...completed].reverse().slice(0, PAGE), "until the boundary: the messages before it");
  // From later than To: said, with focus on To, and nothing asked.
  let asked = 0;
  const count = (r) => { if (r.url().includes("/api/messages?")) asked++; };
  page.on("request", count);
  await page.getByLabel("From").fill(berlin(new Date(BOUNDARY.getTime() + 60000)));
  await page.getByRole("button", { name: "Search" }).click();
  await page.locator(".filters .error").getByText("To: must be later than From.").waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.name), "until");
  page.off("request", count);
  assert.equal(asked, 0, "no request for a time range that is none");
});

test("the endpoint's own message log pages, filters and expands to the endpoint's attempts", async () => {
  await page.goto(new URL("/portal/#/ep/" + encodeURIComponent(EP_ID), BASE).href);
  const log = page.locator("section.endpoint-log");
  await log.locator("tr.message-row").first().waitFor();
  assert.equal(await log.locator("h3").first().textContent(), "Message log");
  const pages = await pageThrough(log);
  assert.deepEqual(pages.map((p) => p.length), pageSizes(IDS.length));
  assert.deepEqual(pages.flat(), [...IDS].reverse(), "each message once, newest first");
  const { items } = await expandAttempts(log);
  assert.ok(items.length > 0);
  await shot(page, "endpoint-log");
  await log.getByLabel("Message id, webhook-id or job id").fill("");

  await log.getByLabel("Event type").selectOption("job.failed");
  await submit(log, (u) => u.includes("/message-log?") && u.includes("event_type=job.failed"));
  assert.deepEqual(await rowIDs(log), [...FAILED].reverse());
  await searchFor("job_7", log);
  assert.deepEqual(await rowIDs(log), [], "job_7 is a job.completed message: not of the type chosen");
  await log.getByLabel("Event type").selectOption("");
  await searchFor("job_7", log);
  assert.deepEqual(await rowIDs(log), [IDS[7]]);
});
