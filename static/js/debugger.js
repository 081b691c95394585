// Run detail as a debugger: line anchors (#L12, #L12-L20) with a copy-link control, the node
// timeline filtering the log, and the selected node kept highlighted across live refreshes.
// The server renders every view this script asks for; without it the links still work.
(function () {
  "use strict";

  var RANGE = /^#L(\d+)(?:-L(\d+))?$/;
  var anchorFrom = null;

  function panel() { return document.getElementById("log-panel"); }

  function parseHash(hash) {
    var match = RANGE.exec(hash || "");
    if (!match) return null;
    var start = parseInt(match[1], 10);
    var end = match[2] ? parseInt(match[2], 10) : start;
    return start <= end ? { start: start, end: end } : { start: end, end: start };
  }

  function rangeHash(range) {
    return range.start === range.end ? "#L" + range.start : "#L" + range.start + "-L" + range.end;
  }

  function notice(text) {
    var el = document.querySelector("[data-log-notice]");
    if (!el) return;
    el.textContent = text;
    el.hidden = !text;
  }

  function copyButton() { return document.querySelector("[data-log-copy]"); }

  function highlight(range) {
    var box = panel();
    if (!box) return null;
    box.querySelectorAll(".log-line.is-selected").forEach(function (li) {
      li.classList.remove("is-selected");
    });
    var first = null;
    if (range) {
      for (var seq = range.start; seq <= range.end && seq - range.start <= 1000; seq++) {
        var li = document.getElementById("L" + seq);
        if (li) { li.classList.add("is-selected"); first = first || li; }
      }
    }
    var copy = copyButton();
    if (copy) copy.disabled = !range;
    return first;
  }

  // Show the line (or range) the URL names: highlight and scroll to it; a kept line the current
  // filter hides is fetched once with its context; a trimmed line says so.
  function applyHash(fetchMissing) {
    var box = panel();
    var range = parseHash(location.hash);
    if (!box || !range) return false;
    var first = highlight(range);
    if (first) {
      first.scrollIntoView({ block: "center" });
      notice("");
      return true;
    }
    var kept = parseInt(box.getAttribute("data-log-first"), 10);
    var last = parseInt(box.getAttribute("data-log-last"), 10);
    var cap = box.getAttribute("data-log-cap");
    if (range.end < kept) {
      notice("Line " + range.start + ": this line is no longer kept (the newest " + cap + " are).");
    } else if (range.start > last) {
      notice("Line " + range.start + " does not exist yet: the log ends at line " + last + ".");
    } else if (fetchMissing && window.htmx) {
      var start = Math.max(range.start, kept);
      var context = Math.min(100, Math.max(10, range.end - start));
      window.htmx.ajax("GET", location.pathname + "?around=" + start + "&context=" + context, {
        target: "#log-panel", swap: "outerHTML"
      });
    }
    return false;
  }

  function scrollToFocus() {
    var focus = document.querySelector("#log-panel .log-line.is-focus");
    if (focus) focus.scrollIntoView({ block: "center" });
  }

  function selectedNode() {
    return new URLSearchParams(location.search).get("nodeId") || "";
  }

  function markNode(nodeId) {
    document.querySelectorAll("tr[data-node-id], .tl-node[data-node-id]").forEach(function (el) {
      var on = !!nodeId && el.getAttribute("data-node-id") === nodeId;
      el.classList.toggle("is-selected", on);
      if (el.tagName === "TR") {
        if (on) el.setAttribute("aria-current", "true"); else el.removeAttribute("aria-current");
      }
    });
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      var ok = document.execCommand("copy");
      area.remove();
      if (ok) resolve(); else reject(new Error("copy refused"));
    });
  }

  document.addEventListener("click", function (event) {
    var number = event.target.closest("#log-panel a.ln");
    if (number) {
      event.preventDefault();
      var seq = parseInt(number.closest(".log-line").getAttribute("data-seq"), 10);
      var range = { start: seq, end: seq };
      if (event.shiftKey && anchorFrom !== null) {
        range = { start: Math.min(anchorFrom, seq), end: Math.max(anchorFrom, seq) };
      } else {
        anchorFrom = seq;
      }
      history.replaceState(history.state, "", location.pathname + location.search + rangeHash(range));
      highlight(range);
      return;
    }
    var copy = event.target.closest("[data-log-copy]");
    if (copy) {
      var status = document.querySelector("[data-log-copy-status]");
      copyText(location.href).then(function () {
        if (status) status.textContent = "Link copied: " + location.href;
      }, function () {
        if (status) status.textContent = "Copy this link: " + location.href;
      });
      return;
    }
    var node = event.target.closest("a.tl-node");
    if (node && window.htmx && !event.metaKey && !event.ctrlKey && !event.shiftKey) {
      event.preventDefault();
      var nodeId = node.getAttribute("data-node-id");
      var same = selectedNode() === nodeId;
      var query = same ? "" : "?" + new URLSearchParams({ nodeId: nodeId }).toString();
      history.pushState(history.state, "", location.pathname + query);
      markNode(same ? "" : nodeId);
      window.htmx.ajax("GET", location.pathname + query, { target: "#log-panel", swap: "outerHTML" });
    }
  });

  document.addEventListener("htmx:afterSettle", function (event) {
    var target = event.detail.target;
    if (!target) return;
    if (target.id === "log-panel") {
      if (!applyHash(false)) scrollToFocus();
    }
    markNode(selectedNode());
  });

  window.addEventListener("hashchange", function () { applyHash(true); });
  window.addEventListener("popstate", function () { markNode(selectedNode()); });

  document.addEventListener("DOMContentLoaded", function () {
    markNode(selectedNode());
    // After app.js has put the log at its newest line: the anchor, else the focused line.
    if (!applyHash(true)) scrollToFocus();
  });
})();
