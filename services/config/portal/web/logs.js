// pulsehooks portal: the delivery logs of an endpoint (#/ep/{id}/logs),
// with resend and recover; the message log across all endpoints
// (#/messages), a message's deliveries (#/msg/{id}), and the endpoint
// page's list of waiting deliveries. It uses the helpers app.js puts on
// window.pulsehooksPortal and adds its views with addRoute.
(function () {
  "use strict";

  var P = window.pulsehooksPortal;
  var app = P.app, el = P.el, append = P.append, nextID = P.nextID, toast = P.toast, api = P.api,
    clear = P.clear, errorBox = P.errorBox, fmtTime = P.fmtTime, isSuccess = P.isSuccess, timeEl = P.timeEl;

  function viewLogs(id) {
    clear();
    var enc = encodeURIComponent(id);
    append(app, el("p", null, el("a", { href: "#/ep/" + enc }, "← Endpoint")), el("h2", null, "Delivery logs"));
    var outID = nextID("outcome"), aftID = nextID("after"), befID = nextID("before");
    var outcome = el("select", { id: outID, name: "outcome" }, el("option", { value: "" }, "all"),
      el("option", { value: "success" }, "succeeded"), el("option", { value: "http_status" }, "failed: HTTP status"),
      el("option", { value: "timeout" }, "failed: timeout"), el("option", { value: "connection" }, "failed: connection"),
      el("option", { value: "dns" }, "failed: DNS"), el("option", { value: "tls" }, "failed: TLS"),
      el("option", { value: "blocked" }, "failed: blocked address"));
    var after = el("input", { type: "datetime-local", id: aftID, name: "after" });
    var before = el("input", { type: "datetime-local", id: befID, name: "before" });
    var list = el("div", { "aria-live": "polite" });
    function iso(v) { return v ? new Date(v).toISOString() : ""; }
    function load() {
      list.textContent = "";
      var q = [];
      if (outcome.value) q.push("outcome=" + outcome.value);
      if (after.value) q.push("after=" + encodeURIComponent(iso(after.value)));
      if (before.value) q.push("before=" + encodeURIComponent(iso(before.value)));
      api("GET", "endpoints/" + enc + "/attempts" + (q.length ? "?" + q.join("&") : "")).then(function (page) {
        var atts = page.data || [];
        if (!atts.length) { list.appendChild(el("p", { class: "empty" }, "No attempts match.")); return; }
        var tbody = el("tbody");
        atts.forEach(function (a) {
          var ok = isSuccess(a);
          tbody.appendChild(el("tr", { class: "attempt-row", "data-outcome": ok ? "success" : "failure" },
            el("td", { "data-label": "Time" }, fmtTime(a.started_at || a.timestamp)),
            el("td", { "data-label": "Outcome" }, el("span", { class: ok ? "ok" : "bad" }, ok ? "Delivered" : "Failed"), " ", String(a.status_code || a.outcome || "")),
            el("td", { "data-label": "Message" }, el("code", null, a.message_id || ""), " ", a.event_type || ""),
            el("td", { "data-label": "Attempt" }, String(a.attempt || "")),
            el("td", null, el("a", { href: "#/attempt/" + encodeURIComponent(a.id) }, "Details"), " ",
              el("button", { type: "button", class: "resend", onclick: function () { resend(id, a.message_id); } }, "Resend"))));
        });
        list.appendChild(el("table", { class: "responsive" }, el("thead", null, el("tr", null,
          el("th", null, "Time"), el("th", null, "Outcome"), el("th", null, "Message"), el("th", null, "Attempt"), el("th", null, "Actions"))), tbody));
      }).catch(function (err) { list.appendChild(errorBox(err)); });
    }
    var sinceID = nextID("since");
    var since = el("input", { type: "datetime-local", id: sinceID, name: "since" });
    var retrying = el("input", { type: "checkbox", name: "include_retrying" });
    var recover = el("button", { type: "button", onclick: function () {
      if (!since.value) { toast("Choose a time to recover from"); since.focus(); return; }
      api("POST", "endpoints/" + enc + "/recover", { since: iso(since.value), include_retrying: retrying.checked }).then(function (r) {
        var n = (r && r.count) || 0;
        toast("Queued " + n + (n === 1 ? " delivery" : " deliveries") + " again" + (r && r.more ? "; more remain" : ""));
      })
        .catch(function (err) { toast(err.message); });
    } }, "Recover failed deliveries");
    append(app,
      el("form", { class: "panel", onsubmit: function (e) { e.preventDefault(); load(); } },
        el("div", { class: "row" },
          el("div", null, el("label", { for: outID }, "Outcome"), outcome),
          el("div", null, el("label", { for: aftID }, "After"), after),
          el("div", null, el("label", { for: befID }, "Before"), before)),
        el("div", { class: "actions" }, el("button", { type: "submit" }, "Filter"), el("button", { type: "button", onclick: load }, "Refresh"))),
      list,
      el("section", { class: "panel" }, el("h3", null, "Recover"),
        el("p", { class: "hint" }, "Send again every delivery to this endpoint that failed since a time; optionally also those still retrying (their scheduled retry may still come, with the same webhook-id)."),
        el("label", { for: sinceID }, "Since"), since,
        el("label", { class: "check" }, retrying, el("span", null, "Also still retrying")),
        el("div", { class: "actions" }, recover)));
    load();
    function resend(epID, msgID) {
      api("POST", "endpoints/" + encodeURIComponent(epID) + "/messages/" + encodeURIComponent(msgID) + "/resend").then(function () {
        toast("Message resent"); setTimeout(load, 1500);
      }).catch(function (err) { toast(err.message); });
    }
  }

  P.addRoute(/^\/ep\/([^/]+)\/logs$/, viewLogs);

  // stateLabels are the delivery states as the pages name them.
  var stateLabels = {
    pending: "Pending", put_off: "Put off", retrying: "Retrying", succeeded: "Succeeded",
    failed: "Failed", dropped: "Dropped", none: "No endpoint"
  };
  var stateClass = { succeeded: "ok", failed: "bad", dropped: "bad", retrying: "warn", put_off: "warn" };
  // stateNode shows a delivery state, with its reason when there is one
  // ("Put off: endpoint failing").
  function stateNode(state, reason) {
    return el("span", { class: "state " + (stateClass[state] || ""), "data-state": state },
      (stateLabels[state] || state) + (reason ? ": " + reason : ""));
  }

  // viewMessages is the message log across all endpoints: one row per
  // message with its state and attempt count, searched by message id,
  // webhook-id or job id, filtered by state, paged Newer/Older by the
  // list's cursors.
  var pageSize = 25;
  function viewMessages() {
    clear();
    append(app, el("h2", null, "Messages"));
    var qID = nextID("search"), sID = nextID("state");
    var search = el("input", { type: "text", id: qID, name: "search", autocomplete: "off", placeholder: "msg_… or a job id" });
    var state = el("select", { id: sID, name: "state" }, el("option", { value: "" }, "any"),
      ["held", "pending", "put_off", "retrying", "succeeded", "failed", "dropped"].map(function (s) {
        return el("option", { value: s }, s === "held" ? "Waiting (pending, put off or retrying)" : stateLabels[s]);
      }));
    var list = el("div", { class: "message-log", "aria-live": "polite" });
    var newer = el("button", { type: "button", class: "newer", disabled: true }, "← Newer");
    var older = el("button", { type: "button", class: "older", disabled: true }, "Older →");
    var cursors = { next: null, prev: null };
    function query(extra) {
      var q = ["limit=" + pageSize];
      if (state.value) q.push("state=" + encodeURIComponent(state.value));
      return q.concat(extra || []).join("&");
    }
    // load shows the page the iterator names (the first without one); a
    // search asks by message id (webhook-id is the same) and, finding
    // none, by job id.
    function load(iterator) {
      list.textContent = "";
      list.appendChild(el("p", { class: "muted" }, "Loading…"));
      var term = search.value.trim();
      var req;
      if (term && !iterator) {
        req = api("GET", "messages?" + query(["message_id=" + encodeURIComponent(term)])).then(function (p) {
          if ((p.data || []).length) return p;
          return api("GET", "messages?" + query(["job_id=" + encodeURIComponent(term)]));
        });
      } else {
        var extra = iterator ? ["iterator=" + encodeURIComponent(iterator)] : [];
        if (term) extra.push("job_id=" + encodeURIComponent(term));
        req = api("GET", "messages?" + query(extra));
      }
      req.then(function (p) { show(p, term); }).catch(function (err) { list.textContent = ""; list.appendChild(errorBox(err)); });
    }
    function show(page, term) {
      list.textContent = "";
      var rows = page.data || [];
      cursors.next = page.iterator || null;
      cursors.prev = page.prev_iterator || null;
      newer.disabled = !cursors.prev;
      older.disabled = !cursors.next;
      if (!rows.length) {
        list.appendChild(el("p", { class: "empty" }, term ? "No message has the id, webhook-id or job id \u201c" + term + "\u201d." : "No messages match."));
        return;
      }
      var tbody = el("tbody");
      rows.forEach(function (m) {
        tbody.appendChild(el("tr", { class: "message-row", "data-message-id": m.id },
          el("td", { "data-label": "Message" }, el("a", { href: "#/msg/" + encodeURIComponent(m.id) }, el("code", null, m.id))),
          el("td", { "data-label": "Event type" }, el("code", null, m.event_type || "")),
          el("td", { "data-label": "State" }, stateNode(m.state)),
          el("td", { "data-label": "Attempts", class: "attempts" }, String(m.attempts || 0)),
          el("td", { "data-label": "Endpoints" }, String((m.deliveries || []).length)),
          el("td", { "data-label": "Created" }, timeEl(m.created_at))));
      });
      list.appendChild(el("table", { class: "responsive" }, el("thead", null, el("tr", null,
        el("th", null, "Message"), el("th", null, "Event type"), el("th", null, "State"), el("th", null, "Attempts"),
        el("th", null, "Endpoints"), el("th", null, "Created"))), tbody));
    }
    newer.addEventListener("click", function () { if (cursors.prev) load(cursors.prev); });
    older.addEventListener("click", function () { if (cursors.next) load(cursors.next); });
    append(app,
      el("form", { class: "panel", role: "search", onsubmit: function (e) { e.preventDefault(); load(null); } },
        el("div", { class: "row" },
          el("div", { class: "grow" }, el("label", { for: qID }, "Message id, webhook-id or job id"), search),
          el("div", null, el("label", { for: sID }, "State"), state)),
        el("div", { class: "actions" }, el("button", { type: "submit", class: "primary" }, "Search"))),
      list, el("div", { class: "actions pager" }, newer, older));
    load(null);
  }

  // viewMessage is one message: its deliveries to each endpoint with
  // their state, attempts and next attempt, and links to its attempts.
  function viewMessage(id) {
    clear();
    var holder = el("div", null, el("p", { class: "muted" }, "Loading…"));
    append(app, el("p", null, el("a", { href: "#/messages" }, "← Messages")), el("h2", null, "Message ", el("code", null, id)), holder);
    Promise.all([api("GET", "messages/" + encodeURIComponent(id)), api("GET", "messages/" + encodeURIComponent(id) + "/attempts")]).then(function (r) {
      var m = r[0], atts = (r[1] && r[1].data) || [];
      holder.textContent = "";
      append(holder, el("dl", { class: "facts" },
        el("dt", null, "Event type"), el("dd", null, el("code", null, m.event_type || "")),
        el("dt", null, "Created"), el("dd", null, timeEl(m.created_at))),
        el("h3", null, "Deliveries"), deliveryTable(m.deliveries || [], true),
        el("h3", null, "Attempts"),
        atts.length ? el("ul", { class: "attempt-list" }, atts.map(function (a) {
          return el("li", null, el("a", { href: "#/attempt/" + encodeURIComponent(a.id) }, "Attempt " + (a.attempt || "")), " · ",
            timeEl(a.started_at || a.timestamp), " · ", el("span", { class: isSuccess(a) ? "ok" : "bad" }, P.outcomeText ? P.outcomeText(a) : (isSuccess(a) ? "Delivered" : "Failed")));
        })) : el("p", { class: "empty" }, "No attempts yet."));
    }).catch(function (err) { holder.textContent = ""; append(holder, errorBox(err)); });
  }

  // deliveryTable lists deliveries: state and why, attempts made, last
  // and next attempt; withEndpoint adds the endpoint column.
  function deliveryTable(ds, withEndpoint) {
    if (!ds.length) return el("p", { class: "empty" }, "No deliveries.");
    var tbody = el("tbody");
    ds.forEach(function (d) {
      tbody.appendChild(el("tr", { class: "delivery-row", "data-message-id": d.message_id, "data-state": d.state },
        withEndpoint ? el("td", { "data-label": "Endpoint" }, el("a", { href: "#/ep/" + encodeURIComponent(d.endpoint_id) }, el("code", null, d.endpoint_id))) :
          el("td", { "data-label": "Message" }, el("a", { href: "#/msg/" + encodeURIComponent(d.message_id) }, el("code", null, d.message_id)), " ", d.event_type || ""),
        el("td", { "data-label": "State" }, stateNode(d.state, d.reason)),
        el("td", { "data-label": "Attempts", class: "attempts" }, String(d.attempts || 0)),
        el("td", { "data-label": "Last attempt" }, d.last_attempt_id ? el("a", { href: "#/attempt/" + encodeURIComponent(d.last_attempt_id) }, timeEl(d.last_attempt_at)) : "none"),
        el("td", { "data-label": "Next attempt", class: "next-attempt" }, d.next_attempt_at ? timeEl(d.next_attempt_at) : (d.state === "pending" ? "now (queued)" : "none"))));
    });
    return el("table", { class: "responsive deliveries" }, el("thead", null, el("tr", null,
      el("th", null, withEndpoint ? "Endpoint" : "Message"), el("th", null, "State"), el("th", null, "Attempts"),
      el("th", null, "Last attempt"), el("th", null, "Next attempt"))), tbody);
  }

  // waitingPanel is the endpoint page's list of its waiting deliveries
  // (GET endpoints/{id}/deliveries?state=held): pending, put off and
  // why, or retrying, with attempts made and the next attempt time.
  var waitingShown = 10;
  function waitingPanel(ep) {
    var enc = encodeURIComponent(ep.id);
    var body = el("div", { "aria-live": "polite" }, el("p", { class: "muted" }, "Loading…"));
    var count = el("span", { class: "waiting-count" });
    api("GET", "endpoints/" + enc + "/deliveries?state=held&limit=250").then(function (p) {
      var ds = p.data || [];
      body.textContent = "";
      count.textContent = ds.length ? " (" + ds.length + (p.iterator ? "+" : "") + ")" : "";
      if (!ds.length) { body.appendChild(el("p", { class: "empty" }, "Nothing waiting: every delivery to this endpoint has been attempted.")); return; }
      // The first few show; the rest on asking, so the page below stays in reach.
      var table = deliveryTable(ds, false), rows = table.querySelectorAll("tbody tr");
      body.appendChild(table);
      if (rows.length > waitingShown) {
        Array.prototype.slice.call(rows, waitingShown).forEach(function (tr) { tr.hidden = true; });
        var all = el("button", { type: "button", class: "show-all", onclick: function () {
          Array.prototype.forEach.call(rows, function (tr) { tr.hidden = false; });
          all.remove();
        } }, "Show all " + rows.length + " waiting");
        body.appendChild(el("div", { class: "actions" }, all));
      }
      if (p.iterator) body.appendChild(el("p", { class: "hint" }, "More are waiting than shown here: the newest 250 are listed."));
    }).catch(function (err) { body.textContent = ""; body.appendChild(errorBox(err)); });
    return el("section", { class: "panel waiting" }, el("h3", null, "Waiting deliveries", count), body);
  }

  P.addRoute(/^\/messages$/, viewMessages);
  P.addRoute(/^\/msg\/([^/]+)$/, viewMessage);
  P.addEndpointPanel(waitingPanel);
})();
