// pulsehooks portal: the delivery logs of an endpoint (#/ep/{id}/logs),
// with resend and recover. It uses the helpers app.js puts on
// window.pulsehooksPortal and adds its views with addRoute.
(function () {
  "use strict";

  var P = window.pulsehooksPortal;
  var app = P.app, el = P.el, append = P.append, nextID = P.nextID, toast = P.toast, api = P.api,
    clear = P.clear, errorBox = P.errorBox, fmtTime = P.fmtTime, isSuccess = P.isSuccess;

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
})();
