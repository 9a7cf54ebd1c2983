// Browser tests of the portal's own pages (chart, attempt page, errors,
// kept forms, branding, embedding), driven by
// services/standalone/portal_front_browser_test.go (go test).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run these tests through go test (portal_front_browser_test.go)`);
  return v;
};
const BASE = env("PORTAL_BASE");
const LINK_SERVER = env("LINK_SERVER");
const ALLOWED_FRAME = env("ALLOWED_FRAME");
const OTHER_FRAME = env("OTHER_FRAME");
const OK_ID = env("OK_ENDPOINT_ID");
const REFUSED_ID = env("REFUSED_ENDPOINT_ID");
const OK_SENDS = Number(env("OK_SENDS"));
const RECEIVER = env("RECEIVER_URL");
const BRAND_COLOR = env("BRAND_COLOR");
const LOGO_URL = env("LOGO_URL");
const ARTIFACTS = env("ARTIFACTS_DIR");

let browser, context, page;
const consoleErrors = [];

async function newLink() {
  const r = await fetch(LINK_SERVER);
  assert.equal(r.status, 200);
  return (await r.text()).trim();
}

// shot saves the page at desktop and phone size.
async function shot(p, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await p.screenshot({ path: join(ARTIFACTS, `front-${name}.png`), fullPage: true });
  const size = p.viewportSize();
  await p.setViewportSize({ width: 390, height: 844 });
  await p.screenshot({ path: join(ARTIFACTS, `front-${name}-phone.png`), fullPage: true });
  await p.setViewportSize(size);
}

function rgb(hex) {
  const h = hex.replace("#", "");
  return `rgb(${parseInt(h.slice(0, 2), 16)}, ${parseInt(h.slice(2, 4), 16)}, ${parseInt(h.slice(4, 6), 16)})`;
}

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  context = await browser.newContext({ viewport: { width: 1280, height: 900 }, timezoneId: "Europe/Berlin", locale: "en-GB" });
  page = await context.newPage();
  page.on("dialog", (d) => d.accept());
  page.on("pageerror", (e) => { consoleErrors.push(String(e)); console.log("page error:", e); });
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  page.setDefaultTimeout(15000);
  const resp = await page.goto(await newLink());
  assert.equal(resp.status(), 200);
});

after(async () => { await browser?.close(); });

test("branding: product name, logo, primary colour and dark theme", async () => {
  await page.goto(new URL("/portal/#/", BASE).href);
  await page.getByRole("heading", { name: /^Endpoints \(\d+\)$/ }).waitFor();
  assert.equal(await page.locator("html").getAttribute("data-theme"), "dark");
  assert.match(await page.title(), / · Acme Hooks$/);
  assert.equal((await page.locator("header .product").textContent()).trim(), "Acme Hooks");
  const logo = page.locator("header img.logo");
  assert.equal(await logo.getAttribute("src"), LOGO_URL);
  await page.waitForFunction(() => { const i = document.querySelector("header img.logo"); return i && i.complete && i.naturalWidth > 0; });
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.equal(bg, "rgb(13, 17, 23)", "the dark theme's background");
  const btn = await page.getByRole("button", { name: "Add endpoint" }).evaluate((b) => getComputedStyle(b).backgroundColor);
  assert.equal(btn, rgb(BRAND_COLOR), "primary buttons in the brand's colour");
  // Times carry the viewer's zone (Europe/Berlin: CET or CEST, GMT+1/+2).
  const ends = (await page.locator("header time").textContent()).trim();
  assert.match(ends, /(CET|CEST|GMT\+1|GMT\+2)/, `session end "${ends}" shows the zone`);
  await shot(page, "01-branded-list");
  assert.deepEqual(consoleErrors.filter((e) => /Content Security Policy/i.test(e)), [], "no CSP violations");
});

test("the endpoint chart shows the stats API's totals over 24 hours and 7 days", async () => {
  await page.goto(new URL(`/portal/#/ep/${OK_ID}`, BASE).href);
  const totals = page.locator(".chart-totals");
  await totals.locator(".chart-success").waitFor();
  const api = await page.evaluate(async (id) => (await fetch(`/portal/api/endpoints/${id}/stats?hours=24`)).json(), OK_ID);
  assert.equal(api.success, OK_SENDS);
  assert.equal(Number(await totals.locator(".chart-success").getAttribute("data-count")), OK_SENDS);
  assert.equal(Number(await totals.locator(".chart-failure").getAttribute("data-count")), api.failure);
  assert.equal(await page.locator(".chart-hour").count(), 24);
  const bars = await page.locator(".chart-hour").evaluateAll((gs) => gs.reduce((a, g) => a + Number(g.dataset.success), 0));
  assert.equal(bars, OK_SENDS, "the bars add up to the total");
  assert.ok(await page.locator(".chart-ok").count() >= 1, "at least one success bar is drawn");
  await shot(page, "02-endpoint-chart-24h");
  await page.getByRole("button", { name: "7 days" }).click();
  await page.locator(".chart-hour").nth(167).waitFor();
  assert.equal(await page.locator(".chart-hour").count(), 168);
  assert.match(await totals.textContent(), new RegExp(`${OK_SENDS} succeeded, 0 failed in the last 7 days`));
  await shot(page, "03-endpoint-chart-7d");

  // The failing endpoint's chart counts its failures.
  await page.goto(new URL(`/portal/#/ep/${REFUSED_ID}`, BASE).href);
  await page.locator(".chart-failure").waitFor();
  const bad = await page.evaluate(async (id) => (await fetch(`/portal/api/endpoints/${id}/stats`)).json(), REFUSED_ID);
  assert.ok(bad.failure >= 1);
  assert.ok(Number(await page.locator(".chart-failure").getAttribute("data-count")) >= 1);
  assert.ok(await page.locator(".chart-bad").count() >= 1, "a failure bar is drawn");
});

test("the attempt page says what happened in plain words, with its number and a resend", async () => {
  const atts = await page.evaluate(async (id) => (await fetch(`/portal/api/endpoints/${id}/attempts`)).json(), REFUSED_ID);
  const first = atts.data[atts.data.length - 1];
  await page.goto(new URL(`/portal/#/attempt/${first.id}`, BASE).href);
  await page.locator(".outcome-text").waitFor();
  assert.equal((await page.locator(".outcome-text").textContent()).trim(), "Connection refused");
  assert.match(await page.locator(".attempt-number").textContent(), /^Attempt \d+ of this delivery$/);
  assert.equal(await page.getByText(/dial tcp|connect: connection refused/).count() <= 1, true, "the raw error is at most a detail");
  assert.match(await page.locator("dl.facts").textContent(), /(CET|CEST|GMT\+1|GMT\+2)/, "times show the zone");
  await shot(page, "04-attempt-refused");

  const okAtts = await page.evaluate(async (id) => (await fetch(`/portal/api/endpoints/${id}/attempts`)).json(), OK_ID);
  await page.goto(new URL(`/portal/#/attempt/${okAtts.data[0].id}`, BASE).href);
  await page.locator(".outcome-text").filter({ hasText: "HTTP 200" }).first().waitFor();
  await page.getByRole("button", { name: "Resend message" }).click();
  const landed = page.locator(".result .attempt-result[data-outcome=success]");
  await landed.waitFor({ timeout: 20000 });
  assert.equal((await landed.locator(".status-code").textContent()).trim(), "200");
  await shot(page, "05-attempt-resent");
});

test("errors name the field as labelled, once, with focus on it", async () => {
  await page.goto(new URL("/portal/#/new", BASE).href);
  await page.getByLabel("URL", { exact: true }).fill(`${RECEIVER}/errors`);
  await page.getByRole("button", { name: "Add header" }).click();
  await page.getByLabel("Header name").fill("X Team");
  await page.getByLabel("Header value").fill("core");
  await page.getByRole("button", { name: "Add endpoint" }).click();
  const msg = page.getByText(/^Custom header “X Team”: /);
  await msg.waitFor();
  assert.equal(await msg.count(), 1, "the error is shown once");
  assert.equal(await page.getByText(/headers\.X Team/).count(), 0, "no raw field path");
  assert.equal(await page.evaluate(() => document.activeElement.getAttribute("aria-label")), "Header name");
  await shot(page, "06-error-header");

  await page.getByLabel("Header name").fill("X-Team");
  await page.getByLabel("Timeout (seconds)").fill("99");
  await page.getByRole("button", { name: "Add endpoint" }).click();
  await page.getByText(/^Timeout: enter a whole number of seconds from 1 to 30$/).waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.name), "timeout_seconds");

  await page.getByLabel("Timeout (seconds)").fill("7");
  await page.getByLabel("Rate limit (requests per second)").fill("25");
  await page.getByRole("button", { name: "Add endpoint" }).click();
  await page.getByRole("heading", { name: /Endpoint/ }).waitFor();
  const id = decodeURIComponent(page.url().split("#/ep/")[1]);
  const ep = await page.evaluate(async (id) => (await fetch(`/portal/api/endpoints/${id}`)).json(), id);
  assert.equal(ep.timeout_seconds, 7);
  assert.equal(ep.rate_limit, 25);
});

test("a form filled when the session ends is kept and saved after a new link", async () => {
  await page.goto(new URL("/portal/#/new", BASE).href);
  await page.getByLabel("URL", { exact: true }).fill(`${RECEIVER}/kept-across-sessions`);
  await page.getByLabel("Description").fill("filled before the session ended");
  // The session ends behind the page's back.
  await page.evaluate(async () => {
    const s = await (await fetch("/portal/api/session")).json();
    await fetch("/portal/api/logout", { method: "POST", headers: { "X-CSRF-Token": s.csrf_token } });
  });
  await page.getByRole("button", { name: "Add endpoint" }).click();
  await page.getByRole("heading", { name: "Your portal session has ended" }).waitFor();
  await page.locator(".kept").filter({ hasText: "kept-across-sessions" }).waitFor();
  await shot(page, "07-session-ended-form-kept");

  await page.goto(await newLink());
  await page.getByRole("heading", { name: /Endpoint/ }).waitFor();
  await page.getByText("filled before the session ended").first().waitFor();
  await page.getByText(/Saved your changes/).waitFor();
  assert.match(page.url(), /#\/ep\/ep_/);
  assert.equal(await page.evaluate(() => sessionStorage.getItem("pulsehooks.kept-write")), null, "nothing left to send");
  await page.reload();
  await page.getByRole("heading", { name: /Endpoint/ }).waitFor();
});

test("embedded in an iframe on the allowed origin it works; another origin is refused", async () => {
  const parent = await context.newPage();
  await parent.goto(ALLOWED_FRAME);
  const frame = parent.frameLocator("#portal");
  await frame.getByRole("heading", { name: /^Endpoints \(\d+\)$/ }).waitFor();
  await frame.getByRole("link", { name: "← Back" }).waitFor();
  assert.equal(await frame.getByRole("link", { name: "← Back" }).getAttribute("target"), "_top");
  // The API works inside the frame (the session cookie is sent there).
  await frame.getByRole("link", { name: "Event catalog" }).click();
  await frame.getByRole("heading", { name: "Event catalog" }).waitFor();
  await shot(parent, "08-embedded-allowed");

  const refused = [];
  const other = await context.newPage();
  other.on("console", (m) => refused.push(m.text()));
  await other.goto(OTHER_FRAME);
  await other.waitForTimeout(1500);
  const f = other.frames().find((x) => x !== other.mainFrame());
  const url = f ? f.url() : "";
  let heading = 0;
  try { heading = await other.frameLocator("#portal").getByRole("heading", { name: /Endpoints/ }).count(); } catch { heading = 0; }
  assert.equal(heading, 0, "the portal does not render in a frame of another origin");
  assert.ok(/chrome-error:/.test(url) || refused.some((m) => /frame-ancestors|Refused to frame/i.test(m)),
    `the frame is refused (frame url ${url}, console ${JSON.stringify(refused)})`);
  await shot(other, "09-embedded-refused");
  await other.close();
  await parent.close();
});
