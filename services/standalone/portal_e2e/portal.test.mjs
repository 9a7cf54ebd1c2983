// Browser tests of the pulsehooks portal, driven by
// services/standalone/portal_browser_test.go (go test), which starts the real
// system and a receiver and passes them in the environment.
import { test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run these tests through go test (portal_browser_test.go)`);
  return v;
};
const LINK = env("PORTAL_LINK_A");
const RECEIVER = env("RECEIVER_URL");
const ARTIFACTS = env("ARTIFACTS_DIR");
const RESULTS = env("RESULTS_FILE");
const B_ENDPOINT = env("TENANT_B_ENDPOINT_ID");
const DOWN_BODY = env("RECEIVER_DOWN_BODY");
const ATTEMPT_LOG = process.env.ATTEMPT_LOG === "true";
const NO_ATTEMPT_LOG = "the attempt-log routes (/v1/messages, /v1/endpoints/{id}/attempts) are not registered yet";

let browser, context, page;
const results = {};
const consoleErrors = [];

async function shot(name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: join(ARTIFACTS, `${name}-phone.png`), fullPage: true });
  await page.setViewportSize({ width: 1280, height: 900 });
}

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    // launch() gives every run a fresh temporary profile (user data dir).
  });
  context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  page.on("dialog", (d) => d.accept());
  page.on("pageerror", (e) => { consoleErrors.push(String(e)); console.log("page error:", e); });
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  page.setDefaultTimeout(15000);
});

// The page each test ends on, passed or failed.
afterEach(async (t) => {
  mkdirSync(ARTIFACTS, { recursive: true });
  const name = t.name.replace(/[^a-z0-9]+/gi, "-").slice(0, 60);
  await page?.screenshot({ path: join(ARTIFACTS, `end-${name}.png`), fullPage: true }).catch(() => {});
});

after(async () => {
  writeFileSync(RESULTS, JSON.stringify(results));
  await browser?.close();
});

async function openEndpoint() {
  await page.goto(new URL(`/portal/#/ep/${results.endpoint_id}`, LINK).href);
  await page.getByRole("heading", { name: /Endpoint/ }).waitFor();
}

async function sendTest(payload) {
  await page.locator("section", { has: page.getByRole("heading", { name: "Send a test event" }) }).getByLabel("Event type").selectOption("pulsehooks.test");
  if (payload) await page.getByLabel("Payload (JSON object)").fill(JSON.stringify(payload, null, 2));
  await page.getByRole("button", { name: "Send test event" }).click();
  // "Sent message …" shows while the page polls for the attempt; a fast
  // delivery replaces it with the result before a slow test sees it.
  await page.getByText(/Sent message/).or(page.locator(".attempt-result")).first().waitFor();
}

test("redeem a link, add an endpoint with a filter, a header and basic auth, send a test event", async () => {
  const resp = await page.goto(LINK);
  assert.equal(resp.status(), 200);
  assert.match(page.url(), /\/portal\/$/);
  await page.getByRole("button", { name: "Add endpoint" }).click();
  await page.getByLabel("URL", { exact: true }).fill(`${RECEIVER}/portal-hook`);
  await page.getByLabel("Description").fill("Receiver for the browser test");
  await page.getByRole("checkbox", { name: /job\.completed/ }).check();
  await page.getByRole("button", { name: "Add header" }).click();
  await page.getByLabel("Header name").fill("X-Portal-Test");
  await page.getByLabel("Header value").fill("from-the-browser");
  await page.getByLabel("Username").fill("hookuser");
  await page.getByLabel("Password", { exact: true }).fill("s3cret-pass");
  await page.getByRole("button", { name: "Add endpoint" }).click();
  await page.getByRole("heading", { name: /Endpoint/ }).waitFor();
  results.endpoint_id = decodeURIComponent(page.url().split("#/ep/")[1]);
  assert.match(results.endpoint_id, /^ep_/);
  await assert.doesNotReject(page.getByText("hookuser (password set)").waitFor());
  assert.equal(await page.getByText("s3cret-pass").count(), 0, "the password is never shown back");

  await page.getByRole("button", { name: "Reveal" }).click();
  // The secret is fetched when Reveal is clicked: wait for it to replace the dots.
  const revealed = page.locator(".secret", { hasText: /whsec_/ });
  await revealed.waitFor();
  results.old_secret = (await revealed.textContent()).trim();
  assert.match(results.old_secret, /^whsec_/);
  for (const lang of ["python", "node", "go"]) {
    const code = await page.locator(`.verify-code[data-lang=${lang}]`).textContent();
    assert.ok(code.includes(JSON.stringify(results.old_secret)), `the ${lang} snippet holds the revealed secret`);
  }

  await sendTest({ job_id: "job_test", status: "test", message: "hello", note: "sent from the portal" });
  if (ATTEMPT_LOG) {
    const res = page.locator(".attempt-result");
    await res.waitFor();
    assert.equal(await res.getAttribute("data-outcome"), "success");
    assert.equal((await res.locator(".status-code").textContent()).trim(), "200");
  }
  await shot("01-endpoint-after-test-send");
  await page.goto(new URL("/portal/#/", LINK).href);
  await page.getByRole("link", { name: `${RECEIVER}/portal-hook` }).waitFor();
  await shot("02-endpoint-list");
  await page.goto(new URL("/portal/#/catalog", LINK).href);
  await page.getByRole("heading", { name: "Event catalog" }).waitFor();
  await shot("03-catalog");
});

test("a failing receiver shows in the logs; resend succeeds after it recovers", async (t) => {
  if (!ATTEMPT_LOG) { t.skip(NO_ATTEMPT_LOG); return; }
  await fetch(`${RECEIVER}/_control?mode=fail`, { method: "POST" });
  await openEndpoint();
  await sendTest();
  const res = page.locator(".attempt-result");
  await res.waitFor();
  assert.equal(await res.getAttribute("data-outcome"), "failure");
  await page.getByRole("link", { name: "Delivery logs" }).click();
  await page.getByLabel("Outcome").selectOption("http_status");
  await page.getByRole("button", { name: "Filter" }).click();
  const failed = page.locator(".attempt-row[data-outcome=failure]").first();
  await failed.waitFor();
  await failed.getByRole("link", { name: "Details" }).click();
  await page.locator(".status-code").filter({ hasText: "500" }).waitFor();
  await page.locator(".response-body").filter({ hasText: DOWN_BODY }).waitFor();
  await page.locator(".request-body").filter({ hasText: '"type": "pulsehooks.test"' }).waitFor();
  await shot("04-failed-attempt");

  await fetch(`${RECEIVER}/_control?mode=ok`, { method: "POST" });
  await page.goBack();
  await page.getByLabel("Outcome").selectOption("");
  await page.getByRole("button", { name: "Filter" }).click();
  await page.locator(".attempt-row[data-outcome=failure]").first().getByRole("button", { name: "Resend" }).click();
  await page.locator(".attempt-row[data-outcome=success]").first().waitFor();
  await shot("05-logs-after-resend");
});

test("rotating the secret makes the next delivery carry two signatures", async () => {
  await fetch(`${RECEIVER}/_control?mode=ok`, { method: "POST" });
  await openEndpoint();
  await page.getByLabel("Grace period").selectOption("86400");
  results.rotated_at = new Date().toISOString();
  await page.getByRole("button", { name: "Rotate secret" }).click();
  await page.getByText("Secret rotated").waitFor();
  results.new_secret = (await page.locator(".secret").textContent()).trim();
  assert.match(results.new_secret, /^whsec_/);
  assert.notEqual(results.new_secret, results.old_secret);
  await sendTest();
  if (ATTEMPT_LOG) {
    await page.locator(".attempt-result[data-outcome=success]").waitFor();
  }
  await shot("06-after-rotation");
});

test("a reused link is refused; tenant A cannot see tenant B's endpoint", async () => {
  const other = await context.newPage();
  const resp = await other.goto(LINK);
  assert.equal(resp.status(), 410);
  await other.getByText(/already used/).first().waitFor();
  await other.screenshot({ path: join(ARTIFACTS, "07-reused-link.png"), fullPage: true });
  await other.close();

  const status = await page.evaluate(async (id) => (await fetch(`/portal/api/endpoints/${id}`)).status, B_ENDPOINT);
  assert.equal(status, 404);
  await page.goto(new URL(`/portal/#/ep/${B_ENDPOINT}`, LINK).href);
  await page.getByRole("alert").filter({ hasText: /not found/i }).waitFor();
  await shot("08-other-tenant-endpoint");
});

test("a field with <script> in it is shown as text", async () => {
  const evil = `<script>window.__xss=1</script><img src=x onerror="window.__xss=2">`;
  await page.goto(new URL("/portal/#/new", LINK).href);
  await page.getByLabel("URL", { exact: true }).fill(`${RECEIVER}/xss`);
  await page.getByLabel("Description").fill(evil);
  await page.getByRole("button", { name: "Add endpoint" }).click();
  await page.getByRole("heading", { name: /Endpoint/ }).waitFor();
  await page.goto(new URL("/portal/#/", LINK).href);
  await page.getByText(evil, { exact: true }).waitFor();
  await page.reload(); // the server-rendered list must escape it too
  await page.getByText(evil, { exact: true }).first().waitFor();
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  assert.equal(await page.locator("main img").count(), 0);
  await shot("09-script-as-text");
  assert.deepEqual(consoleErrors.filter((e) => /Content Security Policy/i.test(e)), [], "no CSP violations");
});

// Last: it ends the session.
test("a secret header is shown as set, never its value; Log out ends the session", async () => {
  await page.goto(new URL("/portal/#/new", LINK).href);
  await page.getByLabel("URL", { exact: true }).fill(`${RECEIVER}/secret-header`);
  await page.getByRole("button", { name: "Add header" }).click();
  await page.getByLabel("Header name").fill("X-Partner");
  await page.getByLabel("Header value").fill("hdr-secret-value");
  await page.getByLabel("Secret header").check();
  await page.getByRole("button", { name: "Add endpoint" }).click();
  await page.getByRole("heading", { name: /Endpoint/ }).waitFor();
  const id = decodeURIComponent(page.url().split("#/ep/")[1]);
  const ep = await page.evaluate(async (id) => (await fetch(`/portal/api/endpoints/${id}`)).json(), id);
  assert.deepEqual(ep.headers["X-Partner"], { secret: true, set: true });
  assert.equal(await page.getByText("hdr-secret-value").count(), 0, "the secret header value is never shown back");

  await page.getByRole("button", { name: "Log out" }).click();
  await page.getByRole("heading", { name: "You are logged out" }).waitFor();
  const status = await page.evaluate(async () => (await fetch("/portal/api/session")).status);
  assert.equal(status, 401);
  await shot("10-logged-out");
});
