// A pulsehooks webhook receiver with Express.js and the standardwebhooks package.
//
//   WEBHOOK_SECRET=whsec_... PORT=8000 npm start
//
// It verifies each delivery's signature over the raw body (express.raw: parsing
// the JSON first and verifying a re-serialised body is the usual mistake, and
// fails), with the package's 5-minute timestamp window; answers 204 at once;
// ignores a webhook-id it has already seen; and processes events after
// answering. It prints "verified <type> <webhook-id> <data>" for each new event.
"use strict";

const express = require("express");
const { Webhook } = require("standardwebhooks");

const secret = process.env.WEBHOOK_SECRET;
if (!secret) {
  console.error("set WEBHOOK_SECRET to the endpoint's signing secret (whsec_...)");
  process.exit(1);
}
// The package takes the base64 key; pulsehooks secrets are "whsec_<base64>".
const wh = new Webhook(secret.replace(/^whsec_/, ""));
const port = Number(process.env.PORT || 8000);

// seen maps webhook-id to when it was first seen; a real receiver keeps it in
// its database, in the same transaction as the work.
const seen = new Map();
const queue = [];

function firstTime(id) {
  const now = Date.now();
  for (const [k, at] of seen) {
    if (now - at > 3600_000) seen.delete(k);
  }
  if (seen.has(id)) return false;
  seen.set(id, now);
  return true;
}

function process_(id, event) {
  console.log(`verified ${event.type} ${id} ${JSON.stringify(event.data)}`);
}

function drain() {
  while (queue.length > 0) {
    const [id, event] = queue.shift();
    try {
      process_(id, event);
    } catch (err) {
      console.error(`processing ${id} failed: ${err}`);
    }
  }
}

const app = express();

app.post("/webhook", express.raw({ type: "application/json", limit: "1mb" }), (req, res) => {
  let event;
  try {
    // req.body is a Buffer of the exact bytes that were signed.
    event = wh.verify(req.body, req.headers);
  } catch (err) {
    res.status(401).end();
    return;
  }
  const id = req.headers["webhook-id"];
  if (firstTime(id)) {
    queue.push([id, event]);
    setImmediate(drain); // after the answer is sent
  }
  res.status(204).end();
});

const server = app.listen(port, "127.0.0.1", () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}/webhook`);
});

for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => server.close(() => process.exit(0)));
}
