// Small helpers beside htmx: live durations, the log tail's scroll, the theme switch, and clean
// filter URLs. Everything here is an enhancement; the pages work without it.
(function () {
  "use strict";

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

  function tickDurations() {
    var now = Date.now();
    document.querySelectorAll("[data-live-since]").forEach(function (el) {
      var since = Date.parse(el.getAttribute("data-live-since"));
      if (!isNaN(since)) el.textContent = formatDuration((now - since) / 1000);
    });
  }
  setInterval(function () {
    if (document.visibilityState === "visible") tickDurations();
  }, 1000);

  // Drop empty filter values so shared URLs stay short: /runs/?status=failed, not ?pipelineId=&...
  document.addEventListener("htmx:configRequest", function (event) {
    var params = event.detail.parameters;
    if (!params || event.detail.verb !== "get") return;
    if (params instanceof FormData) {
      Array.from(params.keys()).forEach(function (key) {
        var values = params.getAll(key).filter(function (v) { return v !== ""; });
        params.delete(key);
        values.forEach(function (v) { params.append(key, v); });
      });
    } else {
      Object.keys(params).forEach(function (key) { if (params[key] === "") delete params[key]; });
    }
  });

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

  document.addEventListener("DOMContentLoaded", function () {
    var box = logBox();
    if (box) box.scrollTop = box.scrollHeight;
    tickDurations();
  });
})();
