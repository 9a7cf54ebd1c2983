// pulsehooks portal: a small app over /portal/api (the tenant REST API with
// the session cookie as credentials). Every string from the server is put in
// the page with textContent, never parsed as HTML.
(function () {
  "use strict";

  // applyBrand sets the brand's primary colour (data-primary on <html>,
  // checked by the server as #rgb or #rrggbb) and a text colour that reads
  // on it.
  (function applyBrand() {
    var root = document.documentElement, c = root.getAttribute("data-primary");
    if (!c || !/^#([0-9a-f]{3}|[0-9a-f]{6})$/i.test(c)) return;
    var hex = c.length === 4 ? c.replace(/[0-9a-f]/gi, function (d) { return d + d; }) : c;
    var lum = ["1", "3", "5"].map(function (i) {
      var v = parseInt(hex.substr(+i, 2), 16) / 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    var l = 0.2126 * lum[0] + 0.7152 * lum[1] + 0.0722 * lum[2];
    ["--primary", "--primary-border", "--focus"].forEach(function (k) { root.style.setProperty(k, c); });
    if (l <= 0.4 && root.getAttribute("data-theme") === "light") root.style.setProperty("--link", c); // dark enough to read on white
    root.style.setProperty("--on-primary", l > 0.4 ? "#000000" : "#ffffff");
  })();

  var app = document.getElementById("app");
  var toastEl = document.getElementById("toast");
  var session = null;
  var catalog = null;
  var pollTimer = null;

  // el builds an element: el("p", {class: "x"}, "text", child, ...).
  function el(tag, attrs) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === null || v === undefined || v === false) return;
        if (k.slice(0, 2) === "on") node.addEventListener(k.slice(2), v);
        else if (k === "text") node.textContent = v;
        else if (v === true) node.setAttribute(k, "");
        else node.setAttribute(k, String(v));
      });
    }
    for (var i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }
  // append adds children (nodes, strings, arrays of them) to node.
  function append(node) {
    for (var i = 1; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined || c === false) continue;
      if (Array.isArray(c)) { c.forEach(function (x) { append(node, x); }); continue; }
      node.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    }
  }
  var uid = 0;
  function nextID(p) { uid++; return p + "-" + uid; }

  function toast(msg) {
    toastEl.textContent = msg;
    setTimeout(function () { if (toastEl.textContent === msg) toastEl.textContent = ""; }, 4000);
  }

  // api calls the portal API; it resolves to {status, body} and rejects
  // with an Error carrying the server's message and field.
  function api(method, path, body) {
    var opts = { method: method, credentials: "same-origin", headers: { "Accept": "application/json" } };
    if (method !== "GET") {
      opts.headers["X-CSRF-Token"] = session ? session.csrf_token : "";
    }
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    return fetch("api/" + path, opts).then(function (resp) {
      return resp.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        if (!resp.ok) {
          // The message names the field as the form labels it (fieldMessage).
          var field = data && data.error && data.error.field;
          var err = new Error(fieldMessage(field, (data && data.error && data.error.message) || ("request failed with status " + resp.status)));
          err.status = resp.status;
          err.field = field;
          err.code = data && data.error && data.error.code;
          if (resp.status === 401) showEnded();
          throw err;
        }
        return data;
      });
    });
  }

  function showEnded() {
    clear();
    var lb = document.getElementById("logout");
    if (lb) lb.hidden = true;
    var kept = keptWrite();
    append(app, el("h2", null, "Your portal session has ended"),
      el("p", null, "Open a fresh portal link: request a new one from your application."),
      kept ? el("p", { class: "kept" }, "Your unsaved changes (" + kept.what + ") are kept in this tab: open the new link in this tab and they are saved then.") : null);
  }

  // A write the session ended under is kept in sessionStorage (this tab
  // only) and sent again once a new link opens a session of the same
  // tenant in this tab.
  var keptKey = "pulsehooks.kept-write";
  function keepWrite(method, path, body, what) {
    try {
      sessionStorage.setItem(keptKey, JSON.stringify({ tenant: session && session.tenant_id, method: method, path: path, body: body, what: what }));
    } catch (e) { /* storage unavailable: nothing kept */ }
  }
  function keptWrite() {
    try { return JSON.parse(sessionStorage.getItem(keptKey) || "null"); } catch (e) { return null; }
  }
  function dropWrite() {
    try { sessionStorage.removeItem(keptKey); } catch (e) { /* nothing kept */ }
  }
  // resumeWrite sends a kept write again after a new session started; it
  // reports whether it took over the page.
  function resumeWrite() {
    var k = keptWrite();
    if (!k) return false;
    dropWrite();
    if (k.tenant !== session.tenant_id) return false; // another tenant's link: not theirs to send
    clear();
    append(app, el("p", { class: "muted" }, "Saving your changes from before the session ended (" + k.what + ")…"));
    api(k.method, k.path, k.body).then(function (saved) {
      toast("Saved your changes from before the session ended (" + k.what + ")");
      var target = saved && saved.id ? "#/ep/" + encodeURIComponent(saved.id) : location.hash;
      if (location.hash !== target) location.hash = target; // hashchange routes
      else route();
    }).catch(function (err) {
      clear();
      append(app, el("h2", null, "Your changes could not be saved"),
        el("p", { class: "error", role: "alert" }, err.message),
        el("p", null, el("a", { href: "#/" }, "Back to the endpoints")));
    });
    return true;
  }

  function clear() {
    if (pollTimer) { clearTimeout(pollTimer); pollTimer = null; }
    app.textContent = "";
  }
  // fieldLabels name the API's fields as the endpoint form labels them.
  var fieldLabels = {
    url: "URL", description: "Description", event_types: "Event types", headers: "Custom headers",
    "basic_auth.username": "Username", "basic_auth.password": "Password", basic_auth: "Basic authentication",
    timeout_seconds: "Timeout", rate_limit: "Rate limit", enabled: "Enabled",
    payload: "Payload", event_type: "Event type", grace_period_seconds: "Grace period", expire_previous: "Grace period",
    since: "Since", until: "Until", after: "After", before: "Before", outcome: "Outcome", hours: "Chart period"
  };
  // fieldMessage writes an API error about field in plain words: the
  // label, then the message without the API's "field: " prefix;
  // headers.X (or headers.X.secret) is the custom header "X".
  function fieldMessage(field, message) {
    message = String(message || "");
    var label = fieldLabels[field];
    var m = /^headers\.(.+?)(\.secret)?$/.exec(field || "");
    if (!label && m) label = "Custom header \u201c" + m[1] + "\u201d";
    if (!label) label = fieldLabels[String(field || "").split(".")[0]] || "";
    if (!label) return message; // a field no form shows: the API's words
    if (message.indexOf(field + ": ") === 0) message = message.slice(field.length + 2);
    return label + ": " + message;
  }
  function errorBox(err) { return el("p", { class: "error", role: "alert" }, err.message || String(err)); }
  // fmtTime writes a time in the viewer's zone with the zone shown
  // ("7 Dec 2026, 16:04:05 GMT+1"); the exact UTC time is its title.
  function fmtTime(s) {
    if (!s) return "—";
    var d = new Date(s);
    if (isNaN(d)) return String(s);
    return d.toLocaleString(undefined, { day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short" });
  }
  // timeEl is a <time> element showing fmtTime(s).
  function timeEl(s) {
    var d = new Date(s);
    return el("time", isNaN(d) ? null : { datetime: d.toISOString(), title: d.toISOString() }, fmtTime(s));
  }
  // localizeTimes rewrites the server-rendered <time datetime> elements
  // (written in UTC) into the viewer's zone.
  function localizeTimes(root) {
    Array.prototype.forEach.call(root.querySelectorAll("time[datetime]"), function (t) {
      t.textContent = fmtTime(t.getAttribute("datetime"));
      t.title = t.getAttribute("datetime");
    });
  }
  localizeTimes(document);
  function catalogLoad() {
    if (catalog) return Promise.resolve(catalog);
    return api("GET", "event-types?limit=250").then(function (p) { catalog = p.data || []; return catalog; });
  }

  // ---- endpoints list ----
  function viewList() {
    clear();
    var heading = el("h2", null, "Endpoints");
    var addBtn = el("button", { class: "primary", type: "button", onclick: function () { location.hash = "#/new"; } }, "Add endpoint");
    append(app, el("div", { class: "row" }, el("div", { class: "grow" }, heading), addBtn));
    var holder = el("div", null, el("p", { class: "muted" }, "Loading…"));
    append(app, holder);
    api("GET", "endpoints?limit=250").then(function (page) {
      holder.textContent = "";
      var eps = page.data || [];
      heading.textContent = "Endpoints (" + eps.length + ")";
      if (!eps.length) {
        append(holder, el("p", { class: "empty" }, "No endpoints yet. Add one to start receiving webhooks."));
        return;
      }
      var tbody = el("tbody");
      eps.forEach(function (ep) {
        var rate = el("span", { class: "muted" }, "—");
        tbody.appendChild(el("tr", null,
          el("td", { "data-label": "URL" }, el("a", { href: "#/ep/" + encodeURIComponent(ep.id) }, el("code", null, ep.url))),
          el("td", { "data-label": "Description" }, ep.description || ""),
          el("td", { "data-label": "Status" }, statusBadge(ep)),
          el("td", { "data-label": "Event types" }, typesText(ep.event_types)),
          el("td", { "data-label": "Success (24 h)" }, rate)));
        loadRate(ep.id, rate);
      });
      append(holder, el("table", { class: "responsive" },
        el("thead", null, el("tr", null, el("th", null, "URL"), el("th", null, "Description"), el("th", null, "Status"),
          el("th", null, "Event types"), el("th", null, "Success (24 h)"))), tbody));
    }).catch(function (err) { holder.textContent = ""; append(holder, errorBox(err)); });
  }
  function statusBadge(ep) {
    if (ep.enabled) return el("span", { class: "ok" }, "Enabled");
    return el("span", null, el("span", { class: "off" }, "Disabled"), ep.disabled_reason ? el("span", { class: "muted" }, " — " + ep.disabled_reason) : null);
  }
  function typesText(types) {
    if (!types || !types.length) return "All event types";
    return types.map(function (t) { return el("code", null, t); }).reduce(function (acc, c) { acc.push(c, " "); return acc; }, []);
  }
  function loadRate(id, node) {
    api("GET", "endpoints/" + encodeURIComponent(id) + "/stats").then(function (st) {
      var buckets = (st && (st.data || st.buckets || st.hours)) || [];
      var ok = 0, bad = 0;
      buckets.forEach(function (b) { ok += b.success || 0; bad += b.failure || 0; });
      if (ok + bad === 0) { node.textContent = "no attempts"; return; }
      node.textContent = Math.round((ok * 1000) / (ok + bad)) / 10 + "% of " + (ok + bad);
      node.className = ok === ok + bad ? "ok" : (ok === 0 ? "bad" : "warn");
    }).catch(function () { node.textContent = "—"; });
  }

  // ---- endpoint form (add and edit) ----
  function endpointForm(ep, onSaved) {
    var editing = !!ep;
    ep = ep || { url: "", description: "", event_types: [], headers: {}, basic_auth: null, enabled: true };
    var errs = el("div", { "aria-live": "polite" });
    var fieldErrors = {};
    function field(name, label, input, hint) {
      var id = nextID(name);
      input.id = id;
      var err = el("p", { class: "error", id: id + "-err" });
      fieldErrors[name] = err;
      input.setAttribute("aria-describedby", id + "-err");
      return el("div", null, el("label", { for: id }, label), hint ? el("p", { class: "hint" }, hint) : null, input, err);
    }
    var url = el("input", { type: "url", name: "url", required: true, autocomplete: "off", placeholder: "https://example.com/webhooks" });
    url.value = ep.url;
    var desc = el("input", { type: "text", name: "description", maxlength: 1024 });
    desc.value = ep.description || "";
    var types = el("fieldset", null, el("legend", null, "Event types"),
      el("p", { class: "hint" }, "Choose the event types this endpoint receives. None chosen means all types."));
    var typeList = el("div", null, el("p", { class: "muted" }, "Loading the catalog…"));
    types.appendChild(typeList);
    catalogLoad().then(function (cat) {
      typeList.textContent = "";
      cat.forEach(function (t) {
        var cb = el("input", { type: "checkbox", name: "event_type", value: t.name });
        cb.checked = (ep.event_types || []).indexOf(t.name) >= 0;
        typeList.appendChild(el("label", { class: "check" }, cb, el("span", null, el("code", null, t.name), " ", el("span", { class: "muted" }, t.description || ""))));
      });
    }).catch(function (err) { typeList.textContent = ""; typeList.appendChild(errorBox(err)); });
    fieldErrors.event_types = el("p", { class: "error" });
    types.appendChild(fieldErrors.event_types);

    var headerRows = el("div");
    // A header's value is a string, or {secret: true, set: true} for a
    // secret header, whose value the API never shows: its row says "set"
    // and an empty value keeps it.
    function addHeaderRow(name, value) {
      var isSecret = value !== null && typeof value === "object" && value.secret === true;
      var n = el("input", { type: "text", name: "header_name", "aria-label": "Header name", placeholder: "X-Custom-Header" });
      var v = el("input", { type: isSecret ? "password" : "text", name: "header_value", "aria-label": "Header value", autocomplete: "off",
        placeholder: isSecret && value.set ? "set (leave empty to keep)" : "value" });
      var sec = el("input", { type: "checkbox", name: "header_secret", "aria-label": "Secret header" });
      sec.checked = isSecret;
      sec.addEventListener("change", function () { v.type = sec.checked ? "password" : "text"; });
      n.value = name || ""; v.value = isSecret ? "" : (value || "");
      var row = el("div", { class: "headers-row" }, n, v,
        el("label", { class: "check" }, sec, el("span", null, "Secret")),
        el("button", { type: "button", "aria-label": "Remove header", onclick: function () { row.remove(); } }, "Remove"));
      if (isSecret && value.set) row.setAttribute("data-set", name);
      headerRows.appendChild(row);
    }
    Object.keys(ep.headers || {}).forEach(function (k) { addHeaderRow(k, ep.headers[k]); });
    fieldErrors.headers = el("p", { class: "error" });
    var headers = el("fieldset", null, el("legend", null, "Custom headers"),
      el("p", { class: "hint" }, "Sent with every delivery. Signature, content and hop-by-hop headers cannot be overridden. " +
        "Secret headers (always Authorization and names with token, secret, key or auth) are stored encrypted and never shown again."),
      headerRows, fieldErrors.headers,
      el("button", { type: "button", onclick: function () { addHeaderRow("", ""); } }, "Add header"));

    var baUser = el("input", { type: "text", name: "basic_user", autocomplete: "off" });
    baUser.value = ep.basic_auth ? ep.basic_auth.username : "";
    var baPass = el("input", { type: "password", name: "basic_password", autocomplete: "new-password",
      placeholder: ep.basic_auth && ep.basic_auth.password_set ? "unchanged (set)" : "" });
    var basic = el("fieldset", null, el("legend", null, "Basic authentication"),
      el("p", { class: "hint" }, "Optional. The password is stored encrypted and never shown again."),
      field("basic_auth.username", "Username", baUser), field("basic_auth.password", "Password", baPass,
        editing ? "Leave empty to keep the current password." : null));

    var timeout = el("input", { type: "number", name: "timeout_seconds", min: 1, max: 30, step: 1, inputmode: "numeric" });
    timeout.value = ep.timeout_seconds || 15;
    var rate = el("input", { type: "number", name: "rate_limit", min: 0, max: 10000, step: 1, inputmode: "numeric" });
    rate.value = ep.rate_limit || 0;
    var limits = el("fieldset", null, el("legend", null, "Delivery limits"),
      field("timeout_seconds", "Timeout (seconds)", timeout, "How long to wait for the receiver's answer: 1 to 30 seconds."),
      field("rate_limit", "Rate limit (requests per second)", rate, "At most this many deliveries a second; 0 means no limit (up to 10,000)."));

    var enabled = el("input", { type: "checkbox", name: "enabled" });
    enabled.checked = ep.enabled !== false;
    var submit = el("button", { type: "submit", class: "primary" }, editing ? "Save changes" : "Add endpoint");
    var form = el("form", { novalidate: true, "aria-label": editing ? "Edit endpoint" : "Add endpoint" },
      field("url", "URL", url, "Where deliveries are POSTed: https://… on a public host."),
      field("description", "Description", desc),
      types, headers, basic, limits,
      el("label", { class: "check" }, enabled, el("span", null, "Enabled")),
      errs, el("div", { class: "actions" }, submit));

    // showError puts an error once: under its field, named as the form
    // labels it, with focus moved there; or, for no known field, below the form.
    function showError(field, message, input) {
      var key = field ? (fieldErrors[field] ? field : field.split(".")[0]) : null;
      if (key && fieldErrors[key]) {
        fieldErrors[key].textContent = message;
        input = input || form.querySelector("[aria-describedby='" + fieldErrors[key].id + "']") || headerInput(field) ||
          (key === "event_types" ? typeList.querySelector("input") : null);
        if (input) input.focus();
        return;
      }
      errs.appendChild(el("p", { class: "error", role: "alert" }, message));
    }
    // headerInput is the name input of the header a field like headers.X names.
    function headerInput(field) {
      if (field.indexOf("headers") !== 0) return null;
      var name = field.replace(/^headers\.?/, "").replace(/\.secret$/, "");
      var rows = Array.prototype.filter.call(headerRows.children, function (row) { return row.querySelector("input").value.trim() === name; });
      return (rows[0] || headerRows.children[0] || { querySelector: function () { return null; } }).querySelector("input");
    }
    function wholeNumber(input, lo, hi) {
      var v = input.value.trim();
      if (!/^\d+$/.test(v)) return null;
      var n = parseInt(v, 10);
      return n >= lo && n <= hi ? n : null;
    }

    form.addEventListener("submit", function (e) {
      e.preventDefault();
      errs.textContent = "";
      Object.keys(fieldErrors).forEach(function (k) { fieldErrors[k].textContent = ""; });
      var timeoutSecs = wholeNumber(timeout, 1, 30), rateLimit = wholeNumber(rate, 0, 10000);
      if (timeoutSecs === null) { showError("timeout_seconds", fieldMessage("timeout_seconds", "enter a whole number of seconds from 1 to 30"), timeout); return; }
      if (rateLimit === null) { showError("rate_limit", fieldMessage("rate_limit", "enter a whole number from 0 (no limit) to 10,000"), rate); return; }
      var hdrs = {};
      Array.prototype.forEach.call(headerRows.children, function (row) {
        var ins = row.querySelectorAll("input");
        var name = ins[0].value.trim();
        if (!name) return;
        if (!ins[2].checked) { hdrs[name] = ins[1].value; return; }
        hdrs[name] = ins[1].value === "" && row.getAttribute("data-set") === name ? { secret: true } : { value: ins[1].value, secret: true };
      });
      var chosen = Array.prototype.map.call(typeList.querySelectorAll("input:checked"), function (c) { return c.value; });
      var body = { url: url.value.trim(), description: desc.value, event_types: chosen, headers: hdrs, enabled: enabled.checked,
        timeout_seconds: timeoutSecs, rate_limit: rateLimit };
      if (baUser.value) {
        body.basic_auth = { username: baUser.value };
        if (baPass.value || !editing) body.basic_auth.password = baPass.value;
      } else if (editing) {
        body.basic_auth = null;
      }
      submit.disabled = true;
      var method = editing ? "PATCH" : "POST", path = editing ? "endpoints/" + encodeURIComponent(ep.id) : "endpoints";
      keepWrite(method, path, body, editing ? "edit of endpoint " + ep.url : "new endpoint " + body.url);
      api(method, path, body).then(function (saved) {
        dropWrite();
        toast(editing ? "Endpoint saved" : "Endpoint added");
        onSaved(saved);
      }).catch(function (err) {
        if (err.status === 401) return; // kept for after a new link (keepWrite)
        dropWrite();
        showError(err.field, err.message);
      }).finally(function () { submit.disabled = false; });
    });
    return form;
  }

  function viewNew() {
    clear();
    append(app, el("p", null, el("a", { href: "#/" }, "← Endpoints")), el("h2", null, "Add an endpoint"),
      endpointForm(null, function (ep) { location.hash = "#/ep/" + encodeURIComponent(ep.id); }));
    var first = app.querySelector("input");
    if (first) first.focus();
  }

  // ---- endpoint detail ----
  function viewEndpoint(id) {
    clear();
    var enc = encodeURIComponent(id);
    append(app, el("p", null, el("a", { href: "#/" }, "← Endpoints")));
    var holder = el("div", null, el("p", { class: "muted" }, "Loading…"));
    append(app, holder);
    api("GET", "endpoints/" + enc).then(function (ep) {
      holder.textContent = "";
      var title = el("h2", null, "Endpoint ", el("code", null, ep.url));
      var verify = verifyPanel();
      var toggle = el("button", { type: "button", onclick: function () {
        api("PATCH", "endpoints/" + enc, { enabled: !ep.enabled }).then(function () { toast(ep.enabled ? "Endpoint disabled" : "Endpoint enabled"); viewEndpoint(id); })
          .catch(function (err) { toast(err.message); });
      } }, ep.enabled ? "Disable" : "Enable");
      var del = el("button", { type: "button", class: "danger", onclick: function () {
        if (!window.confirm("Delete this endpoint? Deliveries to it stop at once.")) return;
        api("DELETE", "endpoints/" + enc).then(function () { toast("Endpoint deleted"); location.hash = "#/"; })
          .catch(function (err) { toast(err.message); });
      } }, "Delete");
      append(holder, title,
        el("dl", { class: "facts" },
          el("dt", null, "Id"), el("dd", null, el("code", null, ep.id)),
          el("dt", null, "Status"), el("dd", null, statusBadge(ep)),
          el("dt", null, "Description"), el("dd", null, ep.description || "—"),
          el("dt", null, "Event types"), el("dd", null, typesText(ep.event_types)),
          el("dt", null, "Custom headers"), el("dd", null, Object.keys(ep.headers || {}).length ? Object.keys(ep.headers).join(", ") : "none"),
          el("dt", null, "Basic auth"), el("dd", null, ep.basic_auth ? ep.basic_auth.username + " (password set)" : "none")),
        el("div", { class: "actions" }, toggle, del, el("a", { href: "#/ep/" + enc + "/logs" }, "Delivery logs")),
        statsChart(ep.id), endpointPanels.map(function (f) { return f(ep); }), testPanel(ep), secretPanel(ep, verify.setSecret), verify.node,
        el("details", { class: "panel" }, el("summary", null, "Edit endpoint"),
          endpointForm(ep, function () { viewEndpoint(id); })));
    }).catch(function (err) { holder.textContent = ""; append(holder, errorBox(err)); });
  }

  // ---- chart ----
  var svgNS = "http://www.w3.org/2000/svg";
  function svg(tag, attrs) {
    var node = document.createElementNS(svgNS, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, String(attrs[k])); });
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined) continue;
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return node;
  }
  // statsChart is the endpoint's successes and failures per hour, over 24
  // hours or 7 days, from GET endpoints/{id}/stats?hours=, drawn as
  // stacked bars in inline SVG (each bar's <title> has its counts).
  function statsChart(epID) {
    var enc = encodeURIComponent(epID);
    var totals = el("p", { class: "chart-totals", "aria-live": "polite" }, "Loading…");
    var holder = el("div", { class: "chart" });
    var spans = [[24, "24 hours"], [168, "7 days"]];
    var buttons = spans.map(function (sp) {
      return el("button", { type: "button", class: "chart-span", "data-hours": sp[0], "aria-pressed": "false", onclick: function () { load(sp[0]); } }, sp[1]);
    });
    function load(hours) {
      buttons.forEach(function (b) { b.setAttribute("aria-pressed", String(b.getAttribute("data-hours") === String(hours))); });
      api("GET", "endpoints/" + enc + "/stats?hours=" + hours).then(function (st) {
        draw(st, hours);
      }).catch(function (err) { totals.textContent = ""; holder.textContent = ""; holder.appendChild(errorBox(err)); });
    }
    function draw(st, hours) {
      var hs = st.hours || [];
      var ok = 0, bad = 0, top = 0;
      hs.forEach(function (h) { ok += h.success || 0; bad += h.failure || 0; top = Math.max(top, (h.success || 0) + (h.failure || 0)); });
      var span = hours === 168 ? "the last 7 days" : "the last 24 hours";
      totals.textContent = "";
      append(totals, el("span", { class: "ok chart-success", "data-count": ok }, ok + " succeeded"), ", ",
        el("span", { class: "bad chart-failure", "data-count": bad }, bad + " failed"), " in " + span +
        (ok + bad ? " (" + Math.round((ok * 1000) / (ok + bad)) / 10 + "% delivered)" : ""));
      var W = 720, H = 160, padL = 32, padB = 22, n = hs.length || 1, bw = (W - padL) / n;
      var scale = top ? (H - padB - 8) / top : 0;
      var chart = svg("svg", { viewBox: "0 0 " + W + " " + H, class: "chart-svg", role: "img",
        "aria-label": "Deliveries per hour over " + span + ": " + ok + " succeeded, " + bad + " failed" });
      chart.appendChild(svg("line", { x1: padL, y1: H - padB, x2: W, y2: H - padB, class: "chart-axis" }));
      if (top) chart.appendChild(svg("text", { x: padL - 4, y: 12, class: "chart-label", "text-anchor": "end" }, String(top)));
      else chart.appendChild(svg("text", { x: (W + padL) / 2, y: (H - padB) / 2, class: "chart-label chart-empty", "text-anchor": "middle" }, "No attempts in " + span));
      chart.appendChild(svg("text", { x: padL - 4, y: H - padB, class: "chart-label", "text-anchor": "end" }, "0"));
      hs.forEach(function (h, i) {
        var x = padL + i * bw, s = h.success || 0, f = h.failure || 0;
        var d = new Date(h.hour);
        var when = d.toLocaleString(undefined, { weekday: "short", hour: "2-digit", minute: "2-digit", timeZoneName: "short" });
        var g = svg("g", { class: "chart-hour", "data-success": s, "data-failure": f },
          svg("title", null, when + ": " + s + " succeeded, " + f + " failed"));
        var sh = s * scale, fh = f * scale;
        g.appendChild(svg("rect", { x: x + 0.5, y: 0, width: Math.max(bw - 1, 0.5), height: H - padB, class: "chart-hit" }));
        if (s) g.appendChild(svg("rect", { x: x + 0.5, y: H - padB - sh, width: Math.max(bw - 1, 0.5), height: sh, class: "chart-ok" }));
        if (f) g.appendChild(svg("rect", { x: x + 0.5, y: H - padB - sh - fh, width: Math.max(bw - 1, 0.5), height: fh, class: "chart-bad" }));
        chart.appendChild(g);
        // Labels: every 6 hours over a day, each midnight over a week.
        var label = hours === 168 ? (d.getHours() === 0 ? d.toLocaleDateString(undefined, { weekday: "short", day: "numeric" }) : null)
          : (d.getHours() % 6 === 0 ? d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" }) : null);
        if (label) chart.appendChild(svg("text", { x: x, y: H - 6, class: "chart-label" }, label));
      });
      holder.textContent = "";
      holder.appendChild(chart);
      holder.appendChild(el("p", { class: "hint" }, "Hours in your time zone (" + zoneName() + "). ",
        el("span", { class: "legend-ok" }, "■"), " succeeded ", el("span", { class: "legend-bad" }, "■"), " failed"));
    }
    load(24);
    return el("section", { class: "panel chart-panel" }, el("div", { class: "row" }, el("h3", { class: "grow" }, "Deliveries per hour"),
      el("div", { class: "row", role: "group", "aria-label": "Chart period" }, buttons)), totals, holder);
  }
  // zoneName is the viewer's time zone, such as "Europe/Berlin".
  function zoneName() {
    try { return Intl.DateTimeFormat().resolvedOptions().timeZone || "local time"; } catch (e) { return "local time"; }
  }

  // secretPanel shows, copies and rotates the signing secret; onSecret hears
  // the secret when it is shown and null when it is hidden.
  function secretPanel(ep, onSecret) {
    var enc = encodeURIComponent(ep.id);
    var shown = el("p", { class: "secret", id: nextID("secret") }, "••••••••••••••••••••");
    var secret = null;
    var reveal = el("button", { type: "button", "aria-controls": shown.id }, "Reveal");
    var copy = el("button", { type: "button", disabled: true }, "Copy");
    reveal.addEventListener("click", function () {
      if (secret) { secret = null; shown.textContent = "••••••••••••••••••••"; reveal.textContent = "Reveal"; copy.disabled = true; onSecret(null); return; }
      api("GET", "endpoints/" + enc + "/secret").then(function (s) {
        secret = s.key; shown.textContent = s.key; reveal.textContent = "Hide"; copy.disabled = false; onSecret(s.key);
      }).catch(function (err) { toast(err.message); });
    });
    copy.addEventListener("click", function () {
      if (!secret) return;
      navigator.clipboard.writeText(secret).then(function () { toast("Secret copied"); }, function () { toast("Copy failed: select the secret and copy it"); });
    });
    var graceID = nextID("grace");
    var grace = el("select", { id: graceID },
      el("option", { value: "0" }, "no grace period"), el("option", { value: "3600" }, "1 hour"),
      el("option", { value: "86400", selected: true }, "24 hours"), el("option", { value: "604800" }, "7 days"),
      el("option", { value: "now" }, "revoke every earlier secret now"));
    var rotate = el("button", { type: "button", onclick: function () {
      if (!window.confirm("Rotate the signing secret? The old one keeps signing during the grace period.")) return;
      var body = grace.value === "now" ? { expire_previous: "now" } : { grace_period_seconds: parseInt(grace.value, 10) };
      api("POST", "endpoints/" + enc + "/secret/rotate", body).then(function (s) {
        secret = s.key; shown.textContent = s.key; reveal.textContent = "Hide"; copy.disabled = false; onSecret(s.key);
        toast("Secret rotated");
      }).catch(function (err) { toast(err.message); });
    } }, "Rotate secret");
    return el("section", { class: "panel", "aria-labelledby": graceID + "-h" },
      el("h3", { id: graceID + "-h" }, "Signing secret"),
      el("p", { class: "hint" }, "Verify the webhook-signature header with this secret. During a rotation's grace period each delivery carries a signature for the old and the new secret."),
      shown, el("div", { class: "row" }, reveal, copy),
      el("div", { class: "row" }, el("label", { for: graceID }, "Grace period"), grace, rotate));
  }

  function testPanel(ep) {
    var enc = encodeURIComponent(ep.id);
    var typeID = nextID("test-type"), bodyID = nextID("test-body");
    var typeSel = el("select", { id: typeID, name: "test_event_type" });
    var body = el("textarea", { id: bodyID, name: "test_payload", spellcheck: "false" });
    var err = el("p", { class: "error", role: "alert" });
    var result = el("div", { class: "result", "aria-live": "polite" });
    catalogLoad().then(function (cat) {
      cat.forEach(function (t) { typeSel.appendChild(el("option", { value: t.name }, t.name)); });
      var pick = cat.filter(function (t) { return t.name === "pulsehooks.test"; })[0] || cat[0];
      if (pick) { typeSel.value = pick.name; body.value = JSON.stringify(pick.example_payload, null, 2); }
    });
    typeSel.addEventListener("change", function () {
      var t = (catalog || []).filter(function (x) { return x.name === typeSel.value; })[0];
      if (t) body.value = JSON.stringify(t.example_payload, null, 2);
    });
    var send = el("button", { type: "button", class: "primary" }, "Send test event");
    send.addEventListener("click", function () {
      err.textContent = ""; result.textContent = "";
      var payload;
      try { payload = JSON.parse(body.value); } catch (e) { err.textContent = "The payload is not valid JSON: " + e.message; body.focus(); return; }
      if (!payload || typeof payload !== "object" || Array.isArray(payload)) { err.textContent = "The payload must be a JSON object."; body.focus(); return; }
      send.disabled = true;
      api("POST", "endpoints/" + enc + "/test", { event_type: typeSel.value, payload: payload }).then(function (r) {
        result.appendChild(el("p", null, "Sent message ", el("code", null, r.message_id), ". Waiting for the attempt…"));
        pollAttempt(r.message_id, ep.id, result, 0);
      }).catch(function (e) { err.textContent = e.message; }).finally(function () { send.disabled = false; });
    });
    return el("section", { class: "panel" }, el("h3", null, "Send a test event"),
      el("label", { for: typeID }, "Event type"), typeSel,
      el("label", { for: bodyID }, "Payload (JSON object)"), body, err,
      el("div", { class: "actions" }, send), result);
  }

  function pollAttempt(msgID, epID, node, n) {
    api("GET", "messages/" + encodeURIComponent(msgID) + "/attempts").then(function (page) {
      var atts = (page.data || []).filter(function (a) { return !a.endpoint_id || a.endpoint_id === epID; });
      if (!atts.length) throw new Error("no attempt yet");
      node.textContent = "";
      node.appendChild(attemptSummary(atts[atts.length - 1]));
    }).catch(function (e) {
      if (n >= 40) { node.appendChild(el("p", { class: "warn" }, "No attempt recorded yet; check the delivery logs later.")); return; }
      if (e && e.status && e.status !== 404) { node.appendChild(errorBox(e)); return; }
      pollTimer = setTimeout(function () { pollAttempt(msgID, epID, node, n + 1); }, 500);
    });
  }

  function isSuccess(a) {
    var o = String(a.outcome || "").toLowerCase();
    return o === "success" || o === "outcome_success" || (a.status_code >= 200 && a.status_code < 300 && !a.error);
  }
  function durationText(a) {
    if (a.duration_ms !== undefined) return a.duration_ms + " ms";
    if (a.duration_us !== undefined) return Math.round(a.duration_us / 100) / 10 + " ms";
    return "—";
  }
  // outcomeText says in plain words what an attempt got: "HTTP 500",
  // "Connection refused", "Timed out after 15 s".
  function outcomeText(a, timeoutSeconds) {
    var o = String(a.outcome || "").toLowerCase().replace(/^outcome_/, "");
    var e = String(a.error || "").toLowerCase();
    switch (o) {
      case "success": case "http_status":
        return a.status_code ? "HTTP " + a.status_code : (o === "success" ? "Delivered" : "HTTP error");
      case "timeout": {
        var secs = timeoutSeconds || (a.duration_ms ? Math.round(a.duration_ms / 1000) : 0);
        return secs ? "Timed out after " + secs + " s" : "Timed out";
      }
      case "connection":
        if (e.indexOf("refused") >= 0) return "Connection refused";
        if (e.indexOf("reset") >= 0) return "Connection reset by the receiver";
        if (e.indexOf("unreachable") >= 0) return "Network unreachable";
        if (e.indexOf("eof") >= 0) return "The receiver closed the connection without an answer";
        return "Could not connect";
      case "dns": return "Host name not found (DNS)";
      case "tls": return "TLS handshake failed (certificate or protocol)";
      case "blocked": return "Blocked: the address is private or not allowed";
    }
    return a.status_code ? "HTTP " + a.status_code : (o || "unknown");
  }
  // outcomeNode is outcomeText in a <strong>, the status code in its
  // .status-code span.
  function outcomeNode(a, timeoutSeconds) {
    var o = String(a.outcome || "").toLowerCase().replace(/^outcome_/, "");
    if (a.status_code && (o === "success" || o === "http_status" || o === "")) {
      return el("strong", { class: "outcome-text" }, "HTTP ", el("span", { class: "status-code" }, String(a.status_code)));
    }
    return el("strong", { class: "outcome-text" }, outcomeText(a, timeoutSeconds));
  }
  function bodyText(b) {
    if (b === null || b === undefined) return "";
    return typeof b === "string" ? b : JSON.stringify(b, null, 2);
  }
  function attemptSummary(a) {
    var ok = isSuccess(a);
    return el("div", { class: "panel attempt-result", "data-outcome": ok ? "success" : "failure" },
      el("p", null, el("span", { class: ok ? "ok" : "bad" }, ok ? "Delivered" : "Failed"),
        " — ", outcomeNode(a), " in ", durationText(a)),
      el("p", null, el("a", { href: "#/attempt/" + encodeURIComponent(a.id) }, "Attempt details")),
      el("p", { class: "hint" }, "Response body"), el("pre", { class: "response-body" }, bodyText(a.response_body) || "(empty)"));
  }

  // ---- verification snippets ----
  // verifySnippets returns receivers in Python, Node and Go that check the
  // signature by hand (no library): HMAC-SHA256 of "id.timestamp.body" under
  // the base64 key after "whsec_", base64, compared with each space-separated
  // "v1,<sig>", and a timestamp within 5 minutes. secret is a string literal.
  function verifySnippets(secret) {
    var py = [
      "import base64, hashlib, hmac, time",
      "from http.server import BaseHTTPRequestHandler, HTTPServer",
      "",
      "SECRET = " + secret,
      "",
      "def verify(headers, body: bytes) -> bool:",
      "    msg_id, ts = headers.get(\"webhook-id\", \"\"), headers.get(\"webhook-timestamp\", \"\")",
      "    if not msg_id or not ts.isdigit() or abs(time.time() - int(ts)) > 5 * 60:",
      "        return False",
      "    key = base64.b64decode(SECRET.removeprefix(\"whsec_\"))",
      "    mac = hmac.new(key, f\"{msg_id}.{ts}.\".encode() + body, hashlib.sha256)",
      "    expected = base64.b64encode(mac.digest())",
      "    for sig in headers.get(\"webhook-signature\", \"\").split(\" \"):",
      "        version, _, value = sig.partition(\",\")",
      "        if version == \"v1\" and hmac.compare_digest(value.encode(), expected):",
      "            return True",
      "    return False",
      "",
      "class Handler(BaseHTTPRequestHandler):",
      "    def do_POST(self):",
      "        body = self.rfile.read(int(self.headers.get(\"content-length\", 0)))  # raw bytes: verify before parsing",
      "        self.send_response(204 if verify(self.headers, body) else 400)",
      "        self.end_headers()",
      "",
      "HTTPServer((\"\", 8000), Handler).serve_forever()"].join("\n");
    var node = [
      "const crypto = require(\"node:crypto\");",
      "const http = require(\"node:http\");",
      "",
      "const SECRET = " + secret + ";",
      "",
      "function verify(headers, body) {",
      "  const id = headers[\"webhook-id\"], ts = headers[\"webhook-timestamp\"] || \"\";",
      "  if (!id || !/^[0-9]+$/.test(ts) || Math.abs(Date.now() / 1000 - Number(ts)) > 5 * 60) return false;",
      "  const key = Buffer.from(SECRET.replace(/^whsec_/, \"\"), \"base64\");",
      "  const expected = crypto.createHmac(\"sha256\", key).update(`${id}.${ts}.`).update(body).digest();",
      "  return (headers[\"webhook-signature\"] || \"\").split(\" \").some((sig) => {",
      "    const [version, value] = sig.split(\",\");",
      "    const got = Buffer.from(value || \"\", \"base64\");",
      "    return version === \"v1\" && got.length === expected.length && crypto.timingSafeEqual(got, expected);",
      "  });",
      "}",
      "",
      "http.createServer((req, res) => {",
      "  const chunks = [];",
      "  req.on(\"data\", (c) => chunks.push(c));",
      "  req.on(\"end\", () => {",
      "    const body = Buffer.concat(chunks); // raw bytes: verify before parsing",
      "    res.writeHead(verify(req.headers, body) ? 204 : 400).end();",
      "  });",
      "}).listen(8000);"].join("\n");
    var go = [
      "package main",
      "",
      "import (",
      "\t\"crypto/hmac\"",
      "\t\"crypto/sha256\"",
      "\t\"encoding/base64\"",
      "\t\"io\"",
      "\t\"net/http\"",
      "\t\"strconv\"",
      "\t\"strings\"",
      "\t\"time\"",
      ")",
      "",
      "const secret = " + secret,
      "",
      "func verify(h http.Header, body []byte) bool {",
      "\tid, ts := h.Get(\"webhook-id\"), h.Get(\"webhook-timestamp\")",
      "\tsec, err := strconv.ParseInt(ts, 10, 64)",
      "\tif id == \"\" || err != nil || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {",
      "\t\treturn false",
      "\t}",
      "\tkey, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, \"whsec_\"))",
      "\tif err != nil {",
      "\t\treturn false",
      "\t}",
      "\tmac := hmac.New(sha256.New, key)",
      "\tmac.Write([]byte(id + \".\" + ts + \".\"))",
      "\tmac.Write(body)",
      "\twant := mac.Sum(nil)",
      "\tfor _, sig := range strings.Split(h.Get(\"webhook-signature\"), \" \") {",
      "\t\tversion, value, _ := strings.Cut(sig, \",\")",
      "\t\tgot, err := base64.StdEncoding.DecodeString(value)",
      "\t\tif version == \"v1\" && err == nil && hmac.Equal(got, want) {",
      "\t\t\treturn true",
      "\t\t}",
      "\t}",
      "\treturn false",
      "}",
      "",
      "func main() {",
      "\thttp.HandleFunc(\"POST /webhooks\", func(w http.ResponseWriter, r *http.Request) {",
      "\t\tbody, err := io.ReadAll(io.LimitReader(r.Body, 1<<20)) // raw bytes: verify before parsing",
      "\t\tif err != nil || !verify(r.Header, body) {",
      "\t\t\thttp.Error(w, \"bad signature\", http.StatusBadRequest)",
      "\t\t\treturn",
      "\t\t}",
      "\t\tw.WriteHeader(http.StatusNoContent)",
      "\t})",
      "\tpanic(http.ListenAndServe(\":8000\", nil))",
      "}"].join("\n");
    return { python: py, node: node, go: go };
  }
  // end of verification snippets

  // verifyPanel shows the snippets; setSecret(key) fills in the endpoint's
  // secret once it is revealed, setSecret(null) puts the placeholder back.
  function verifyPanel() {
    var blocks = {
      python: el("pre", { class: "verify-code", "data-lang": "python" }),
      node: el("pre", { class: "verify-code", "data-lang": "node" }),
      go: el("pre", { class: "verify-code", "data-lang": "go" })
    };
    var note = el("p", { class: "hint" });
    function setSecret(key) {
      var code = verifySnippets(JSON.stringify(key || "whsec_…"));
      Object.keys(blocks).forEach(function (k) { blocks[k].textContent = code[k]; });
      note.textContent = key ? "The snippets hold this endpoint's secret: keep them out of version control."
        : "Reveal the signing secret above to fill it in, or replace whsec_… with it.";
    }
    setSecret(null);
    var node = el("details", { class: "panel verify" }, el("summary", null, "How to verify signatures"),
      el("p", { class: "hint" }, "Each delivery carries webhook-id, webhook-timestamp and webhook-signature: space-separated v1,<base64 HMAC-SHA256 of id.timestamp.body>, keyed with the base64-decoded secret after whsec_. Verify the raw body before parsing it, accept if any v1 signature matches, and reject timestamps more than 5 minutes away."),
      note,
      el("h4", null, "Python"), blocks.python, el("h4", null, "Node"), blocks.node, el("h4", null, "Go"), blocks.go);
    return { node: node, setSecret: setSecret };
  }

  function headerTable(hs) {
    var rows = [];
    if (Array.isArray(hs)) hs.forEach(function (h) { rows.push([h.name, h.value]); });
    else if (hs) Object.keys(hs).forEach(function (k) { rows.push([k, [].concat(hs[k]).join(", ")]); });
    if (!rows.length) return el("p", { class: "muted" }, "none");
    return el("table", { class: "header-table" }, el("tbody", null, rows.map(function (r) { return el("tr", null, el("td", null, el("code", null, r[0])), el("td", null, r[1])); })));
  }

  // viewAttempt shows one attempt: its number, what it got in plain words,
  // the request and the answer, and a resend button whose new attempt
  // appears on the page when it lands.
  function viewAttempt(id) {
    clear();
    var holder = el("div", null, el("p", { class: "muted" }, "Loading…"));
    append(app, el("h2", null, "Attempt ", el("code", null, id)), holder);
    api("GET", "attempts/" + encodeURIComponent(id)).then(function (a) {
      return api("GET", "endpoints/" + encodeURIComponent(a.endpoint_id)).then(function (ep) { return [a, ep]; },
        function () { return [a, null]; });
    }).then(function (r) {
      var a = r[0], ep = r[1];
      holder.textContent = "";
      var ok = isSuccess(a);
      var requestBody = el("pre", { class: "request-body" }, "Loading…");
      loadRequestBody(a.message_id, requestBody);
      var result = el("div", { class: "result", "aria-live": "polite" });
      var resend = el("button", { type: "button", class: "primary" }, "Resend message");
      resend.addEventListener("click", function () {
        resend.disabled = true;
        result.textContent = "";
        var seen = {};
        api("GET", "messages/" + encodeURIComponent(a.message_id) + "/attempts").then(function (page) {
          (page.data || []).forEach(function (x) { seen[x.id] = true; });
          return api("POST", "endpoints/" + encodeURIComponent(a.endpoint_id) + "/messages/" + encodeURIComponent(a.message_id) + "/resend");
        }).then(function () {
          result.appendChild(el("p", null, "Resend queued. Waiting for its attempt…"));
          pollNewAttempt(a.message_id, a.endpoint_id, seen, result, 0);
        }).catch(function (err) { result.appendChild(errorBox(err)); }).finally(function () { resend.disabled = false; });
      });
      var timeout = ep && ep.timeout_seconds;
      append(holder,
        el("p", null, el("a", { href: "#/ep/" + encodeURIComponent(a.endpoint_id) + "/logs" }, "← Delivery logs"), " · ",
          el("a", { href: "#/ep/" + encodeURIComponent(a.endpoint_id) }, "Endpoint")),
        el("dl", { class: "facts" },
          el("dt", null, "Attempt"), el("dd", { class: "attempt-number" }, a.attempt ? "Attempt " + a.attempt + " of this delivery" : "—"),
          el("dt", null, "Outcome"), el("dd", null, el("span", { class: ok ? "ok" : "bad" }, ok ? "Delivered" : "Failed"), " — ", outcomeNode(a, timeout)),
          a.error ? el("dt", null, "Details") : null, a.error ? el("dd", { class: "muted" }, a.error) : null,
          el("dt", null, "Duration"), el("dd", null, durationText(a)),
          el("dt", null, "Started"), el("dd", null, timeEl(a.started_at || a.timestamp)),
          el("dt", null, "Next attempt"), el("dd", null, a.next_attempt_at ? timeEl(a.next_attempt_at) : "none"),
          el("dt", null, "Message"), el("dd", null, el("code", null, a.message_id || ""), " ", a.event_type || ""),
          el("dt", null, "URL"), el("dd", null, el("code", null, a.url || ""))),
        el("div", { class: "actions" }, resend), result,
        el("h3", null, "Request headers (secrets redacted)"), headerTable(a.request_headers),
        el("h3", null, "Request body"), requestBody,
        el("h3", null, "Response headers"), headerTable(a.response_headers),
        el("h3", null, "Response body"), el("pre", { class: "response-body" }, bodyText(a.response_body) || "(empty)"));
    }).catch(function (err) { holder.textContent = ""; append(holder, errorBox(err)); });
  }

  // pollNewAttempt waits for an attempt of the message to the endpoint
  // that is not in seen (the ids before the resend), and shows it in node.
  function pollNewAttempt(msgID, epID, seen, node, n) {
    api("GET", "messages/" + encodeURIComponent(msgID) + "/attempts").then(function (page) {
      var atts = (page.data || []).filter(function (x) { return x.endpoint_id === epID && !seen[x.id]; });
      if (!atts.length) throw new Error("no attempt yet");
      node.textContent = "";
      node.appendChild(attemptSummary(atts[atts.length - 1]));
    }).catch(function (e) {
      if (n >= 60) { node.appendChild(el("p", { class: "warn" }, "No new attempt yet: the endpoint may be waiting out its back-off. Check the delivery logs later.")); return; }
      if (e && e.status && e.status !== 404) { node.appendChild(errorBox(e)); return; }
      pollTimer = setTimeout(function () { pollNewAttempt(msgID, epID, seen, node, n + 1); }, 500);
    });
  }

  // loadRequestBody shows a message's payload, the body every attempt sent,
  // read from GET messages/{id} (null once the event stream dropped it).
  function loadRequestBody(msgID, node) {
    if (!msgID) { node.textContent = "(unknown message)"; return; }
    api("GET", "messages/" + encodeURIComponent(msgID)).then(function (m) {
      node.textContent = m && m.payload !== null && m.payload !== undefined ? bodyText(m.payload)
        : "(no longer kept: the message has left the event stream)";
    }).catch(function (err) { node.textContent = "(could not load the message: " + (err.message || String(err)) + ")"; });
  }

  // ---- catalog ----
  function viewCatalog() {
    clear();
    append(app, el("h2", null, "Event catalog"));
    catalogLoad().then(function (cat) {
      cat.forEach(function (t) {
        append(app, el("section", { class: "panel" }, el("h3", null, el("code", null, t.name)), el("p", null, t.description || ""),
          el("details", null, el("summary", null, "Example payload"), el("pre", null, JSON.stringify(t.example_payload, null, 2))),
          t.json_schema ? el("details", null, el("summary", null, "JSON schema"), el("pre", null, JSON.stringify(t.json_schema, null, 2))) : null));
      });
    }).catch(function (err) { append(app, errorBox(err)); });
  }

  // routes are the views other files add (logs.js) besides these, as
  // [pattern, view]; the view gets the pattern's first group, decoded.
  var routes = [];
  function addRoute(pattern, view) { routes.push([pattern, view]); }
  // endpointPanels are the sections other files add to the endpoint page
  // (logs.js: its waiting deliveries), each f(endpoint) returning a node.
  var endpointPanels = [];
  function addEndpointPanel(f) { endpointPanels.push(f); }

  function route() {
    var h = location.hash.replace(/^#/, "") || "/";
    var m;
    for (var i = 0; i < routes.length; i++) {
      if ((m = h.match(routes[i][0]))) { routes[i][1](m[1] === undefined ? undefined : decodeURIComponent(m[1])); return; }
    }
    if (h === "/new") viewNew();
    else if (h === "/catalog") viewCatalog();
    else if ((m = h.match(/^\/ep\/([^/]+)$/))) viewEndpoint(decodeURIComponent(m[1]));
    else if ((m = h.match(/^\/attempt\/([^/]+)$/))) viewAttempt(decodeURIComponent(m[1]));
    else viewList();
  }

  // pulsehooksPortal is what the other scripts of the portal (logs.js) use;
  // they run after this one and before the first route.
  window.pulsehooksPortal = {
    app: app, el: el, append: append, nextID: nextID, toast: toast, api: api, clear: clear,
    errorBox: errorBox, fmtTime: fmtTime, timeEl: timeEl, isSuccess: isSuccess, durationText: durationText,
    outcomeText: outcomeText, outcomeNode: outcomeNode, catalogLoad: catalogLoad, zoneName: zoneName,
    bodyText: bodyText, headerTable: headerTable, addRoute: addRoute, addEndpointPanel: addEndpointPanel
  };

  window.addEventListener("hashchange", route);
  // logout ends the session on the server (POST, CSRF-checked) and says so.
  var logoutBtn = document.getElementById("logout");
  if (logoutBtn) {
    logoutBtn.addEventListener("click", function () {
      api("POST", "logout").then(function () {
        session = null; logoutBtn.hidden = true; clear();
        append(app, el("h2", null, "You are logged out"),
          el("p", null, "Open a fresh portal link to come back: request a new one from your application."));
      }).catch(function (err) { toast(err.message); });
    });
  }
  // The first route waits for the session and for every deferred script
  // (DOMContentLoaded), so the views of logs.js are there.
  var loaded = new Promise(function (resolve) {
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", resolve);
    else resolve();
  });
  api("GET", "session").then(function (s) {
    session = s;
    if (logoutBtn) logoutBtn.hidden = false;
    return loaded.then(function () { if (!resumeWrite()) route(); });
  }).catch(function (err) { if (err.status !== 401) { clear(); app.appendChild(errorBox(err)); } });
})();
