// Small helpers beside htmx: times in the viewer's zone, ticking durations and heartbeats, live
// regions that say when they cannot refresh (and back off), a filter form that always matches
// the table, the log tail's scroll and the theme switch. Everything here is an enhancement; the
// pages work without it (times then read in UTC).
(function () {
  "use strict";

  // ---------------------------------------------------------------------------------------
  // Time: one format everywhere ("Dec 1, 07:27:17 GMT+1", the year when it is not this one),
  // in the zone the viewer pinned (<html data-time-zone>) or the browser's own.

  function browserZone() {
    try { return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"; } catch (e) { return "UTC"; }
  }
  var ZONE = document.documentElement.getAttribute("data-time-zone") || browserZone();
  var formatters = {};
  function formatter(name, options) {
    if (!formatters[name]) {
      formatters[name] = new Intl.DateTimeFormat("en-US", Object.assign({ timeZone: ZONE }, options));
    }
    return formatters[name];
  }
  var FULL = {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
    second: "2-digit", hourCycle: "h23", timeZoneName: "short"
  };
  function parts(date) {
    var out = {};
    formatter("full", FULL).formatToParts(date).forEach(function (p) { out[p.type] = p.value; });
    return out;
  }
  function thisYear() { return parts(new Date()).year; }
  function zoneName(date) { return parts(date || new Date()).timeZoneName; }
  function dayText(p) { return p.month + " " + p.day + (p.year !== thisYear() ? ", " + p.year : ""); }
  function clock(p, withSeconds) {
    return p.hour + ":" + p.minute + (withSeconds === false ? "" : ":" + p.second);
  }
  function formatInstant(date) {
    var p = parts(date);
    return dayText(p) + ", " + clock(p) + " " + p.timeZoneName;
  }
  function formatAgo(date) {
    var seconds = Math.floor((Date.now() - date.getTime()) / 1000);
    if (seconds < 0) return "in the future";
    if (seconds < 45) return "just now";
    if (seconds < 3600) return Math.max(1, Math.floor(seconds / 60)) + "m ago";
    if (seconds < 86400) return Math.floor(seconds / 3600) + "h ago";
    if (seconds < 86400 * 14) return Math.floor(seconds / 86400) + "d ago";
    return dayText(parts(date));
  }
  // "Nov 20 – Nov 21" for whole days, "Nov 20, 10:00 – 12:00" within a day, "... – now":
  // [start text, end text or null for "now", zone].
  function rangeParts(start, end, endsNow) {
    var s = parts(start), e = parts(end);
    var secs = s.second !== "00" || (!endsNow && e.second !== "00");
    if (endsNow) return [dayText(s) + ", " + clock(s, secs), null, s.timeZoneName];
    var midnight = function (p) { return p.hour === "00" && p.minute === "00" && p.second === "00"; };
    if (midnight(s) && midnight(e)) {
      var last = parts(new Date(end.getTime() - 1000));
      return [dayText(s), dayText(last) === dayText(s) ? "" : dayText(last), s.timeZoneName];
    }
    if (dayText(s) === dayText(e)) return [dayText(s) + ", " + clock(s, secs), clock(e, secs), s.timeZoneName];
    return [dayText(s) + ", " + clock(s, secs), dayText(e) + ", " + clock(e, secs), s.timeZoneName];
  }
  // The range keeps its two <time> elements (machine-readable ends), rewritten in place.
  function formatRange(el) {
    var start = parseInstant(el.getAttribute("data-start")), end = parseInstant(el.getAttribute("data-end"));
    if (!start || !end) return;
    var texts = rangeParts(start, end, el.hasAttribute("data-end-now"));
    var stamp = function (date, text) {
      var t = document.createElement("time");
      t.setAttribute("datetime", date.toISOString().replace(".000Z", "Z"));
      t.setAttribute("data-range", "");
      t.title = formatInstant(date);
      t.textContent = text;
      return t;
    };
    el.textContent = "";
    el.appendChild(stamp(start, texts[0]));
    if (texts[1] === null) el.appendChild(document.createTextNode(" – now"));
    else if (texts[1]) { el.appendChild(document.createTextNode(" – ")); el.appendChild(stamp(end, texts[1])); }
    el.appendChild(document.createTextNode(" (" + texts[2] + ")"));
  }

  function formatDuration(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    if (seconds < 60) return seconds + "s";
    var minutes = Math.floor(seconds / 60);
    seconds = seconds % 60;
    if (minutes < 60) return minutes + "m " + String(seconds).padStart(2, "0") + "s";
    var hours = Math.floor(minutes / 60);
    minutes = minutes % 60;
    if (hours < 48) return hours + "h " + String(minutes).padStart(2, "0") + "m";
    return Math.floor(hours / 24) + "d " + String(hours % 24).padStart(2, "0") + "h";
  }

  function parseInstant(text) { var t = Date.parse(text); return isNaN(t) ? null : new Date(t); }

  function formatTimes(root) {
    root.querySelectorAll("time[datetime]:not([data-range])").forEach(function (el) {
      var date = parseInstant(el.getAttribute("datetime"));
      if (!date) return;
      var style = el.getAttribute("data-format") || "datetime";
      el.title = formatInstant(date);
      if (style === "relative") el.textContent = formatAgo(date);
      else if (style === "time") el.textContent = clock(parts(date));
      else el.textContent = formatInstant(date);
    });
    root.querySelectorAll(".time-range[data-start][data-end]").forEach(formatRange);
    root.querySelectorAll("[data-zone-name]").forEach(function (el) { el.textContent = zoneName(); });
  }

  // Every second while visible: relative times, running durations, heartbeats, countdowns.
  function tick() {
    var now = Date.now();
    document.querySelectorAll("time[data-format=relative]").forEach(function (el) {
      var date = parseInstant(el.getAttribute("datetime"));
      if (date) el.textContent = formatAgo(date);
    });
    document.querySelectorAll("[data-live-since]").forEach(function (el) {
      var since = Date.parse(el.getAttribute("data-live-since"));
      if (!isNaN(since)) el.textContent = formatDuration((now - since) / 1000);
    });
    document.querySelectorAll("[data-heartbeat]").forEach(function (el) {
      var seen = Date.parse(el.getAttribute("data-heartbeat"));
      var lease = parseInt(el.getAttribute("data-lease"), 10) || 600;
      if (isNaN(seen)) return;
      var silence = Math.max(0, (now - seen) / 1000);
      var state = silence >= lease ? "lost" : silence * 2 >= lease ? "late" : "ok";
      var prefix = el.hasAttribute("data-prefix") ? el.getAttribute("data-prefix") : "last report ";
      el.textContent = prefix + formatDuration(silence) + " ago" +
        (state === "late" ? " · lost after " + formatDuration(lease) : "") +
        (state === "lost" ? " · past the " + formatDuration(lease) + " lease" : "");
      el.classList.remove("is-ok", "is-late", "is-lost");
      el.classList.add("is-" + state);
    });
    document.querySelectorAll("[data-countdown]").forEach(function (el) {
      var deadline = Date.parse(el.getAttribute("data-countdown"));
      if (isNaN(deadline)) return;
      var left = (deadline - now) / 1000;
      el.textContent = left > 0 ? "in " + formatDuration(left) : "any moment now";
    });
  }
  setInterval(function () { if (document.visibilityState === "visible") tick(); }, 1000);

  // ---------------------------------------------------------------------------------------
  // The filter form's date-time inputs: shown in the viewer's zone, sent as exact instants.
  // An input the viewer did not touch sends the URL's own value back unchanged.

  function pad(n) { return String(n).padStart(2, "0"); }
  function wallTime(date) {
    var p = parts(date);
    return p.year + "-" + pad(monthNumber(p.month)) + "-" + pad(p.day) + "T" + clock(p);
  }
  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  function monthNumber(name) { return MONTHS.indexOf(name) + 1; }
  function offsetAt(ms) {
    var p = parts(new Date(ms));
    var asUtc = Date.UTC(+p.year, monthNumber(p.month) - 1, +p.day, +p.hour % 24, +p.minute, +p.second);
    return asUtc - Math.floor(ms / 1000) * 1000;
  }
  // A wall time in ZONE ("2026-11-20T10:00[:00]") as an ISO instant in UTC.
  function wallToInstant(value) {
    var m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?/.exec(value);
    if (!m) return value;
    var guess = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0));
    var ms = guess - offsetAt(guess);
    ms = guess - offsetAt(ms);
    return new Date(ms).toISOString().replace(".000Z", "Z");
  }
  function instantOfParam(text, isUpper) {
    text = (text || "").replace(" ", "+");
    if (/^\d{4}-\d{2}-\d{2}$/.test(text)) {
      var day = Date.parse(text + "T00:00:00Z");
      return new Date(isUpper ? day + 86400000 : day);
    }
    if (!/(Z|[+-]\d{2}:?\d{2})$/.test(text)) return null;  // no zone: leave as the server wrote it
    return parseInstant(text);
  }
  function showRangeInputs(root) {
    root.querySelectorAll("input[type=datetime-local][data-instant]").forEach(function (input) {
      var raw = input.getAttribute("data-instant");
      var date = raw ? instantOfParam(raw, input.name === "to") : null;
      if (date) input.value = wallTime(date);
      input.setAttribute("data-shown", input.value);
    });
  }
  document.addEventListener("htmx:configRequest", function (event) {
    var params = event.detail.parameters;
    if (!params || event.detail.verb !== "get") return;
    var form = event.detail.elt && event.detail.elt.closest && event.detail.elt.closest("form#filters");
    if (form && params instanceof FormData) {
      ["from", "to"].forEach(function (key) {
        var input = form.elements[key];
        if (!input || !params.has(key) || !params.get(key)) return;
        var untouched = input.value === input.getAttribute("data-shown") && input.getAttribute("data-instant");
        params.set(key, untouched ? input.getAttribute("data-instant") : wallToInstant(input.value));
      });
    }
    // Drop empty filter values so shared URLs stay short: /runs/?status=failed, not ?pipelineId=&...
    if (params instanceof FormData) {
      Array.from(new Set(params.keys())).forEach(function (key) {
        var values = params.getAll(key).filter(function (v) { return v !== ""; });
        params.delete(key);
        values.forEach(function (v) { params.append(key, v); });
      });
    } else {
      Object.keys(params).forEach(function (key) { if (params[key] === "") delete params[key]; });
    }
  });

  // The form shows what the table shows: after a failed request it goes back to the table's
  // own query (#run-table[data-query]), and a pushed or restored URL is the table's too.
  function setForm(form, query) {
    var params = new URLSearchParams(query);
    Array.from(form.elements).forEach(function (el) {
      if (!el.name) return;
      if (el.type === "checkbox") el.checked = params.getAll(el.name).join(",").split(",").indexOf(el.value) >= 0;
      else if (el.type === "hidden" || el.tagName === "SELECT" || el.type === "search" || el.type === "text") el.value = params.get(el.name) || "";
      else if (el.type === "datetime-local") {
        el.setAttribute("data-instant", params.get(el.name) || "");
        el.value = "";
      }
    });
    showRangeInputs(form);
  }

  // ---------------------------------------------------------------------------------------
  // Live regions ([data-live]) poll only while the tab is visible, and not while something named
  // by data-live-paused-by is on screen (an open confirmation). A poll that fails says so in
  // #live-status and backs off (3 s, 6 s, 12 s... up to 20 s); the first answer clears it. This
  // lives here rather than in hx-trigger filters because htmx evaluates those as code, which the
  // CSP forbids.
  var failing = {};
  function liveKey(elt) { return elt.id || elt.getAttribute("data-live-name") || "live"; }
  function statusBox() { return document.getElementById("live-status"); }
  // Written when a region fails or recovers, not every second: a polite live region that
  // changed each second would be read out each second.
  function showLiveStatus() {
    var box = statusBox();
    if (!box) return;
    // A region that stopped polling (its run finished) or is gone has nothing left to retry.
    Object.keys(failing).forEach(function (key) {
      var elt = document.getElementById(key);
      if (!elt || !elt.hasAttribute("data-live") || !elt.getAttribute("hx-get")) delete failing[key];
    });
    var keys = Object.keys(failing);
    if (!keys.length) { box.hidden = true; box.textContent = ""; return; }
    var text = "Live updates paused, retrying… (" +
      (failing[keys[0]].reason || "the server could not be reached") + ")";
    if (box.textContent !== text) box.textContent = text;
    box.hidden = false;
  }
  window.addEventListener("online", function () {
    Object.keys(failing).forEach(function (k) { failing[k].next = 0; });
  });

  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    if (!elt || !elt.hasAttribute || !elt.hasAttribute("data-live")) return;
    var pausedBy = elt.getAttribute("data-live-paused-by");
    var state = failing[liveKey(elt)];
    if (document.visibilityState !== "visible" || (pausedBy && document.querySelector(pausedBy)) ||
        (state && Date.now() < state.next)) {
      event.preventDefault();
    }
  });
  function liveFailed(elt, reason) {
    var key = liveKey(elt);
    var state = failing[key] || { count: 0 };
    state.count += 1;
    state.reason = reason;
    state.next = Date.now() + Math.min(20, 3 * Math.pow(2, state.count - 1)) * 1000;
    failing[key] = state;
    showLiveStatus();
  }
  function filterStatus(text, retry) {
    var box = document.getElementById("filter-status");
    if (!box) return;
    box.hidden = !text;
    box.querySelector("[data-filter-status-text]").textContent = text || "";
    box.querySelector("[data-filter-retry]").hidden = !retry;
    box._retry = retry || null;
  }
  function requestFailed(event, reason) {
    var elt = event.detail.elt;
    if (!elt || !elt.closest) return;
    if (elt.hasAttribute("data-live")) { liveFailed(elt, reason); return; }
    var form = elt.closest("form#filters");
    var table = document.getElementById("run-table");
    if (form && table) {
      var attempted = new URLSearchParams(new FormData(form)).toString();
      setForm(form, table.getAttribute("data-query") || "");
      filterStatus("Couldn't apply the filter (" + reason + "). The table still shows the filters above.",
        attempted);
    }
  }
  // A 400 carries a form's errors and is swapped into its target like a 200 (base.html's
  // htmx-config). In DEBUG, django-htmx's error handler would instead put it in place of the whole
  // document, a bare fragment: keep the event from bubbling up to that handler (htmx, which does
  // not listen for it, swaps as usual).
  document.addEventListener("htmx:beforeOnLoad", function (event) {
    if (event.detail.xhr && event.detail.xhr.status === 400) event.stopPropagation();
  }, true);
  document.addEventListener("htmx:sendError", function (event) { requestFailed(event, "the server could not be reached"); });
  document.addEventListener("htmx:timeout", function (event) { requestFailed(event, "the server took too long"); });
  document.addEventListener("htmx:responseError", function (event) {
    requestFailed(event, "the server answered " + event.detail.xhr.status);
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var elt = event.detail.elt, xhr = event.detail.xhr;
    if (!elt || !elt.hasAttribute || !xhr || xhr.status < 200 || xhr.status >= 300) return;
    if (elt.hasAttribute("data-live") && failing[liveKey(elt)]) delete failing[liveKey(elt)];
    if (Object.keys(failing).length) setTimeout(showLiveStatus, 0);
    else showLiveStatus();
    if (elt.closest && elt.closest("form#filters")) filterStatus("");
  });

  // Run detail: when the run reaches a final status (its live part stops polling), the log tail
  // and the webhook deliveries refresh at once rather than on their next turn.
  document.addEventListener("htmx:afterSettle", function (event) {
    var target = event.detail.target;
    // Only the swapped part: the filter form is never swapped, so an edit in progress stays.
    formatTimes(target && target.isConnected ? target : document);
    var live = document.getElementById("run-live");
    if (!live || live.hasAttribute("data-live") || live.hasAttribute("data-finished-seen")) return;
    if (!target || (target.id !== "run-live" && !target.closest("#run-live"))) return;
    live.setAttribute("data-finished-seen", "");
    // The run's final answer came through, so the server is reachable: refresh now.
    delete failing["log-tail"];
    delete failing["run-deliveries"];
    var tail = document.getElementById("log-tail");
    if (tail && tail.getAttribute("hx-get") && window.htmx) {
      window.htmx.ajax("GET", tail.getAttribute("hx-get"), { source: tail, target: "#log-lines", swap: "beforeend" });
    }
    var url = live.getAttribute("data-deliveries-url");
    if (url && document.getElementById("run-deliveries") && window.htmx) {
      window.htmx.ajax("GET", url, { target: "#run-deliveries", swap: "outerHTML" });
    }
    showLiveStatus();
  });

  // ---------------------------------------------------------------------------------------
  // Log tail: follow new lines only while the reader is at the bottom; otherwise keep their place.
  var followLog = true;
  function logBox() { return document.getElementById("log-box"); }
  function atBottom(box) { return box.scrollHeight - box.scrollTop - box.clientHeight < 24; }
  function jumpButton() { return document.querySelector("[data-log-jump]"); }
  document.addEventListener("scroll", function (event) {
    var box = logBox();
    if (!box || event.target !== box) return;
    followLog = atBottom(box);
    var jump = jumpButton();
    if (jump) jump.hidden = followLog;
  }, true);
  // A poll answered after a newer request replaced its element (a filter change) is stale.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var elt = event.detail.elt;
    if (elt && elt.hasAttribute && elt.hasAttribute("data-live") && !elt.isConnected) {
      event.detail.shouldSwap = false;
    }
  });
  document.addEventListener("htmx:beforeSwap", function (event) {
    var box = logBox();
    if (box && event.detail.target && event.detail.target.id === "log-lines") followLog = atBottom(box);
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    var box = logBox();
    if (!box || !event.detail.target || event.detail.target.id !== "log-lines") return;
    var empty = box.querySelector(".log-empty");
    if (empty && box.querySelector(".log-line")) empty.remove();
    if (followLog) box.scrollTop = box.scrollHeight;
    else { var jump = jumpButton(); if (jump) jump.hidden = false; }
  });
  document.addEventListener("click", function (event) {
    var jump = event.target.closest("[data-log-jump]");
    if (jump) {
      var box = logBox();
      if (box) box.scrollTop = box.scrollHeight;
      followLog = true;
      jump.hidden = true;
    }
    var retry = event.target.closest("[data-filter-retry]");
    if (retry) {
      var form = document.getElementById("filters");
      var status = document.getElementById("filter-status");
      if (form && status && status._retry) { setForm(form, status._retry); form.requestSubmit(); }
    }
    var copy = event.target.closest("[data-copy]");
    if (copy) copySecret(copy);
    var toggle = event.target.closest("[data-theme-toggle]");
    if (toggle) {
      var root = document.documentElement;
      var dark = root.dataset.theme
        ? root.dataset.theme === "dark"
        : window.matchMedia("(prefers-color-scheme: dark)").matches;
      root.dataset.theme = dark ? "light" : "dark";
      localStorage.setItem("theme", root.dataset.theme);
    }
  });

  // A shown-once secret (admin): select it on focus, copy it with the button beside it.
  function copySecret(button) {
    var input = document.getElementById(button.getAttribute("data-copy"));
    if (!input) return;
    input.select();
    var done = function () { button.textContent = "Copied"; };
    if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(input.value).then(done, function () {});
    else if (document.execCommand("copy")) done();
  }
  document.addEventListener("focusin", function (event) {
    if (event.target.matches && event.target.matches("input[data-select-on-focus]")) event.target.select();
  });

  // The Runs filters' "not" toggles: a ticked one renames its filter's inputs to the negation
  // (pipelineId -> excludePipelineId; label -> excludeLabel, the applied labels too). Capture
  // phase, so the rename lands before the form's own change handler (htmx) reads the values.
  document.addEventListener("change", function (event) {
    var toggle = event.target;
    if (!toggle.matches || !toggle.matches("input[data-negate]")) return;
    var form = toggle.closest("form");
    if (!form) return;
    var param = toggle.getAttribute("data-negate");
    form.querySelectorAll("[data-negatable='" + param + "']").forEach(function (input) {
      input.name = toggle.checked ? toggle.getAttribute("data-negation") : param;
      // An applied label filter (a chip) says whether it now excludes.
      var chip = input.closest("[data-label-filter]");
      if (chip) chip.classList.toggle("is-negated", toggle.checked);
    });
  }, true);

  function start() {
    var box = logBox();
    if (box) box.scrollTop = box.scrollHeight;
    formatTimes(document);
    showRangeInputs(document);
    tick();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
