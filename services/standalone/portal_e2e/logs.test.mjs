// Browser tests of the portal's delivery-state pages (waiting deliveries
// on the endpoint page, the message log: search and paging), driven by
// services/standalone/portal_logs_browser_test.go (go test).
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
const IDS = JSON.parse(env("MESSAGE_IDS"));
const ARTIFACTS = env("ARTIFACTS_DIR");
// The viewer's zone is Europe/Berlin: December times show CET.
const ZONE = /\b(CET|GMT\+1)\b/;

let browser, page;
const pageErrors = [];

// shot saves the page at desktop and phone size.
async function shot(p, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await p.screenshot({ path: join(ARTIFACTS, `logs-${name}.png`), fullPage: true });
  const size = p.viewportSize();
  await p.setViewportSize({ width: 390, height: 844 });
  await p.screenshot({ path: join(ARTIFACTS, `logs-${name}-phone.png`), fullPage: true });
  await p.setViewportSize(size);
}

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, timezoneId: "Europe/Berlin", locale: "en-GB" });
  page = await context.newPage();
  page.on("pageerror", (e) => { pageErrors.push(String(e)); console.log("page error:", e); });
  page.setDefaultTimeout(15000);
  const resp = await page.goto(LINK);
  assert.equal(resp.status(), 200);
});

after(async () => {
  await browser?.close();
  assert.deepEqual(pageErrors, [], "no script errors on the pages");
});

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

async function openMessages() {
  await page.goto(new URL("/portal/#/messages", BASE).href);
  await page.getByRole("heading", { name: "Messages" }).waitFor();
  await page.locator("tr.message-row").first().waitFor();
}
async function rowIDs() {
  return page.locator("tr.message-row").evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-message-id")));
}
async function searchFor(term) {
  await page.getByLabel("Message id, webhook-id or job id").fill(term);
  const done = page.waitForResponse((r) => r.url().includes("/api/messages?") && r.url().includes(encodeURIComponent(term)));
  await page.getByRole("button", { name: "Search" }).click();
  await done;
  await page.waitForFunction(() => !document.querySelector(".message-log .muted"));
}

test("message search by id and by job id finds exactly the one message", async () => {
  await openMessages();
  await searchFor(IDS[17]);
  await page.locator("tr.message-row").first().waitFor();
  assert.deepEqual(await rowIDs(), [IDS[17]]);
  const row = page.locator("tr.message-row");
  assert.match(await row.locator("td").nth(2).textContent(), /Retrying|Put off/);
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

test("paging through 60 messages, 25 a page, reaches each exactly once", async () => {
  await openMessages();
  const older = page.getByRole("button", { name: "Older →" });
  const newer = page.getByRole("button", { name: "← Newer" });
  assert.ok(await newer.isDisabled(), "no newer page before the first");
  const pages = [await rowIDs()];
  while (!(await older.isDisabled())) {
    const before = JSON.stringify(await rowIDs());
    await older.click();
    await page.waitForFunction((b) => {
      const ids = Array.from(document.querySelectorAll("tr.message-row")).map((tr) => tr.getAttribute("data-message-id"));
      return ids.length && JSON.stringify(ids) !== b;
    }, before);
    pages.push(await rowIDs());
    assert.ok(pages.length <= 10, "paging ends");
  }
  assert.deepEqual(pages.map((p) => p.length), [25, 25, 10]);
  const all = pages.flat();
  assert.equal(new Set(all).size, IDS.length, "no message twice");
  assert.deepEqual([...all].sort(), [...IDS].sort());
  assert.deepEqual(all, [...IDS].reverse(), "newest first");
  await shot(page, "messages");

  // And back: Newer returns the pages before, to the first.
  for (let i = pages.length - 2; i >= 0; i--) {
    const before = JSON.stringify(await rowIDs());
    await newer.click();
    await page.waitForFunction((b) => {
      const ids = Array.from(document.querySelectorAll("tr.message-row")).map((tr) => tr.getAttribute("data-message-id"));
      return ids.length && JSON.stringify(ids) !== b;
    }, before);
    assert.deepEqual(await rowIDs(), pages[i], `page ${i + 1} again`);
  }
  assert.ok(await newer.isDisabled(), "no newer page before the first");
});
