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

  // messageLog is a message log: the tenant's across all endpoints, or one
  // endpoint's (opts.endpoint, GET endpoints/{id}/message-log). One row
  // per message with its state and attempt count, expandable to its
  // attempts; searched by message id, webhook-id or job id, filtered by
  // state, event type and time (since/until), paged Newer/Older by the
  // list's cursors. It returns {node, reload}.
  var pageSize = 25;
  function messageLog(opts) {
    opts = opts || {};
    var ep = opts.endpoint || null;
    var path = ep ? "endpoints/" + encodeURIComponent(ep.id) + "/message-log" : "messages";
    var qID = nextID("search"), sID = nextID("state"), tID = nextID("event-type"), fID = nextID("from"), uID = nextID("until");
    var search = el("input", { type: "text", id: qID, name: "search", autocomplete: "off", placeholder: "msg_… or a job id" });
    var state = el("select", { id: sID, name: "state" }, el("option", { value: "" }, "any"),
      ["held", "pending", "put_off", "retrying", "succeeded", "failed", "dropped"].map(function (s) {
        return el("option", { value: s }, s === "held" ? "Waiting (pending, put off or retrying)" : stateLabels[s]);
      }));
    var eventType = el("select", { id: tID, name: "event_type" }, el("option", { value: "" }, "any"));
    P.catalogLoad().then(function (cat) {
      cat.forEach(function (t) { eventType.appendChild(el("option", { value: t.name }, t.name)); });
    }).catch(function () { /* the select keeps "any"; the log itself says what failed */ });
    // Seconds count: a support engineer narrows to the minute and beyond.
    var from = el("input", { type: "datetime-local", id: fID, name: "since", step: 1 });
    var until = el("input", { type: "datetime-local", id: uID, name: "until", step: 1 });
    var formErr = el("p", { class: "error", role: "alert" });
    var list = el("div", { class: "message-log", "aria-live": "polite" });
    var newer = el("button", { type: "button", class: "newer", disabled: true }, "← Newer");
    var older = el("button", { type: "button", class: "older", disabled: true }, "Older →");
    var cursors = { next: null, prev: null, shown: null };
    var zone = el("p", { class: "hint" }, "Times in your time zone (" + P.zoneName() + ").");
    function iso(v) { return v ? new Date(v).toISOString() : ""; }
    // filters are the query's filters, or null (with the error shown and
    // focus on its field) when the time range is not one.
    function filters() {
      formErr.textContent = "";
      var q = ["limit=" + pageSize];
      if (state.value) q.push("state=" + encodeURIComponent(state.value));
      if (eventType.value) q.push("event_type=" + encodeURIComponent(eventType.value));
      var f = from.value ? new Date(from.value) : null, u = until.value ? new Date(until.value) : null;
      if ((from.value && isNaN(f)) || (until.value && isNaN(u))) { formErr.textContent = "Enter the time as a date and a time of day."; (isNaN(f) ? from : until).focus(); return null; }
      if (f && u && f >= u) { formErr.textContent = "To: must be later than From."; until.focus(); return null; }
      if (f) q.push("since=" + encodeURIComponent(iso(from.value)));
      if (u) q.push("until=" + encodeURIComponent(iso(until.value)));
      return q;
    }
    // load shows the page the iterator names (the first without one); a
    // search asks by message id (webhook-id is the same) and, finding
    // none, by job id.
    function load(iterator, quiet) {
      var q = filters();
      if (!q) return;
      if (!quiet) {
        list.textContent = "";
        list.appendChild(el("p", { class: "muted loading" }, "Loading…"));
      }
      var term = search.value.trim();
      var req;
      if (term && !iterator) {
        req = api("GET", path + "?" + q.concat(["message_id=" + encodeURIComponent(term)]).join("&")).then(function (p) {
          if ((p.data || []).length) return p;
          return api("GET", path + "?" + q.concat(["job_id=" + encodeURIComponent(term)]).join("&"));
        });
      } else {
        if (iterator) q.push("iterator=" + encodeURIComponent(iterator));
        if (term) q.push("job_id=" + encodeURIComponent(term));
        req = api("GET", path + "?" + q.join("&"));
      }
      cursors.shown = iterator;
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
      rows.forEach(function (m) { messageRow(m, tbody); });
      list.appendChild(el("table", { class: "responsive messages" }, el("thead", null, el("tr", null,
        el("th", null, el("span", { class: "visually-hidden" }, "Attempts shown")), el("th", null, "Message"), el("th", null, "Event type"),
        el("th", null, "State"), el("th", null, "Attempts"), el("th", null, ep ? "Next attempt" : "Endpoints"), el("th", null, "Created"))), tbody));
    }
    // messageRow adds a message's row and, on expanding, the row of its
    // attempts below (the button is a real <button>: Enter and Space).
    function messageRow(m, tbody) {
      var detailID = nextID("attempts");
      var d = (m.deliveries || [])[0];
      var toggle = el("button", { type: "button", class: "expand", "aria-expanded": "false", "aria-controls": detailID,
        "aria-label": "Attempts of " + m.id }, "▸");
      var detail = el("tr", { class: "attempts-row", id: detailID, hidden: true }, el("td", { colspan: 7 }));
      toggle.addEventListener("click", function () {
        var open = toggle.getAttribute("aria-expanded") !== "true";
        toggle.setAttribute("aria-expanded", String(open));
        toggle.textContent = open ? "▾" : "▸";
        detail.hidden = !open;
        if (open) loadAttempts(m, detail.firstChild);
      });
      tbody.appendChild(el("tr", { class: "message-row", "data-message-id": m.id, "data-state": m.state },
        el("td", { class: "toggle" }, toggle),
        el("td", { "data-label": "Message" }, el("a", { href: "#/msg/" + encodeURIComponent(m.id) }, el("code", null, m.id))),
        el("td", { "data-label": "Event type" }, el("code", null, m.event_type || "")),
        el("td", { "data-label": "State" }, stateNode(m.state, d && ep ? d.reason : "")),
        el("td", { "data-label": "Attempts", class: "attempts" }, String(m.attempts || 0)),
        ep ? el("td", { "data-label": "Next attempt", class: "next-attempt" }, d ? nextAttemptNode(d) : "none")
          : el("td", { "data-label": "Endpoints" }, String((m.deliveries || []).length)),
        el("td", { "data-label": "Created" }, timeEl(m.created_at))));
      tbody.appendChild(detail);
    }
    // loadAttempts fills cell with the message's attempts (to this
    // endpoint only in an endpoint's log), oldest first.
    function loadAttempts(m, cell) {
      cell.textContent = "";
      cell.appendChild(el("p", { class: "muted loading" }, "Loading attempts…"));
      api("GET", "messages/" + encodeURIComponent(m.id) + "/attempts?limit=250").then(function (p) {
        var atts = (p.data || []).filter(function (a) { return !ep || a.endpoint_id === ep.id; });
        atts.sort(function (a, b) { return Date.parse(a.timestamp) - Date.parse(b.timestamp) || (a.attempt || 0) - (b.attempt || 0); });
        cell.textContent = "";
        if (!atts.length) {
          cell.appendChild(el("p", { class: "empty" }, "No attempts yet."));
          return;
        }
        cell.appendChild(el("ol", { class: "attempt-list", "aria-label": "Attempts of " + m.id }, atts.map(function (a) {
          var ok = isSuccess(a);
          return el("li", { class: "attempt-item", "data-attempt-id": a.id, "data-outcome": ok ? "success" : "failure" },
            el("a", { href: "#/attempt/" + encodeURIComponent(a.id) }, "Attempt " + (a.attempt || "?")), " · ",
            timeEl(a.started_at || a.timestamp), " · ",
            el("span", { class: ok ? "ok" : "bad" }, ok ? "Delivered" : "Failed"), " ", el("span", { class: "outcome" }, P.outcomeText(a)),
            ep ? null : el("span", { class: "to-endpoint" }, " · to ", el("code", null, a.endpoint_id)));
        })));
      }).catch(function (err) { cell.textContent = ""; cell.appendChild(errorBox(err)); });
    }
    newer.addEventListener("click", function () { if (cursors.prev) load(cursors.prev); });
    older.addEventListener("click", function () { if (cursors.next) load(cursors.next); });
    var node = el("div", { class: "log" },
      el("form", { class: "panel filters", role: "search", onsubmit: function (e) { e.preventDefault(); load(null); } },
        el("div", { class: "row" },
          el("div", { class: "grow" }, el("label", { for: qID }, "Message id, webhook-id or job id"), search),
          el("div", null, el("label", { for: sID }, "State"), state),
          el("div", null, el("label", { for: tID }, "Event type"), eventType)),
        el("div", { class: "row" },
          el("div", null, el("label", { for: fID }, "From"), from),
          el("div", null, el("label", { for: uID }, "To"), until)),
        formErr, zone,
        el("div", { class: "actions" }, el("button", { type: "submit", class: "primary" }, "Search"))),
      list, el("div", { class: "actions pager" }, newer, older));
    load(null);
    // reload shows the page on view again, as it is now (no "Loading…" in between).
    return { node: node, reload: function () { load(cursors.shown, true); } };
  }

  function viewMessages() {
    clear();
    append(app, el("h2", null, "Messages"), messageLog().node);
  }

  // held tells whether a delivery is still to be attempted.
  function held(state) { return state === "pending" || state === "put_off" || state === "retrying"; }
  // nextAttemptNode is when a delivery's next attempt is: its time ahead,
  // "due now, waiting for a worker" once that time has passed while it
  // still waits, "now (queued)" for a pending one, or "none".
  function nextAttemptNode(d) {
    if (d.next_attempt_at && held(d.state)) {
      var t = Date.parse(d.next_attempt_at);
      if (!isNaN(t) && t <= Date.now()) return el("span", { class: "due", "data-due": "true" }, "due now, waiting for a worker");
      return timeEl(d.next_attempt_at);
    }
    if (d.state === "pending") return "now (queued)";
    return d.next_attempt_at ? timeEl(d.next_attempt_at) : "none";
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
        el("td", { "data-label": "Next attempt", class: "next-attempt" }, nextAttemptNode(d))));
    });
    return el("table", { class: "responsive deliveries" }, el("thead", null, el("tr", null,
      el("th", null, withEndpoint ? "Endpoint" : "Message"), el("th", null, "State"), el("th", null, "Attempts"),
      el("th", null, "Last attempt"), el("th", null, "Next attempt"))), tbody);
  }

  // waitingPanel is the endpoint page's list of its waiting deliveries
  // (GET endpoints/{id}/deliveries?state=held): pending, put off and
  // why, or retrying, with attempts made and the next attempt time. It
  // returns {node, reload}.
  var waitingShown = 10;
  function waitingPanel(ep) {
    var enc = encodeURIComponent(ep.id);
    var body = el("div", { "aria-live": "polite" }, el("p", { class: "muted" }, "Loading…"));
    var count = el("span", { class: "waiting-count" });
    var showAll = false;
    // reload lists the waiting deliveries; it resolves to how many wait.
    function reload() {
      return api("GET", "endpoints/" + enc + "/deliveries?state=held&limit=250").then(function (p) {
        var ds = p.data || [];
        body.textContent = "";
        count.textContent = ds.length ? " (" + ds.length + (p.iterator ? "+" : "") + ")" : "";
        if (!ds.length) { body.appendChild(el("p", { class: "empty" }, "Nothing waiting: every delivery to this endpoint has been attempted.")); return 0; }
        // The first few show; the rest on asking, so the page below stays in reach.
        var table = deliveryTable(ds, false), rows = table.querySelectorAll("tbody tr");
        body.appendChild(table);
        if (rows.length > waitingShown && !showAll) {
          Array.prototype.slice.call(rows, waitingShown).forEach(function (tr) { tr.hidden = true; });
          var all = el("button", { type: "button", class: "show-all", onclick: function () {
            showAll = true;
            Array.prototype.forEach.call(rows, function (tr) { tr.hidden = false; });
            all.remove();
          } }, "Show all " + rows.length + " waiting");
          body.appendChild(el("div", { class: "actions" }, all));
        }
        if (p.iterator) body.appendChild(el("p", { class: "hint" }, "More are waiting than shown here: the newest 250 are listed."));
        return ds.length;
      }).catch(function (err) { body.textContent = ""; body.appendChild(errorBox(err)); return -1; });
    }
    var node = el("section", { class: "panel waiting" }, el("h3", null, "Waiting deliveries", count), body);
    reload();
    return { node: node, reload: reload };
  }

  // endpointPanels are the endpoint page's waiting deliveries and its
  // message log.
  function endpointPanels(ep) {
    var log = messageLog({ endpoint: ep });
    var waiting = waitingPanel(ep);
    return [waiting.node, el("section", { class: "panel endpoint-log" }, el("h3", null, "Message log"), log.node)];
  }

  P.addRoute(/^\/messages$/, viewMessages);
  P.addRoute(/^\/msg\/([^/]+)$/, viewMessage);
  P.addEndpointPanel(endpointPanels);
})();
