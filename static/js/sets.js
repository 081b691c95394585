// The Runs page's sets of runs: saved views and bulk actions.
// - "Save view" and the bulk form send the page's current query (the address bar, which htmx
//   keeps up to date as filters change), not the one the page was first rendered with.
// - Selected rows are remembered across the table's live refreshes and pages; a change of the
//   filters starts a new selection.
// - The bulk preview and the job's progress open in a dialog.
(function () {
  "use strict";
  var selected = new Set();

  function boxes() { return document.querySelectorAll("input.run-check"); }
  function dialog() { return document.getElementById("bulk-dialog"); }

  function refresh() {
    boxes().forEach(function (box) { box.checked = selected.has(box.value); });
    var count = document.querySelector("[data-bulk-count]");
    if (count) count.textContent = selected.size ? selected.size + " run" + (selected.size === 1 ? "" : "s") : "No runs";
    var page = document.querySelector("input[data-check-page]");
    if (page) {
      var all = boxes();
      page.checked = all.length > 0 && Array.prototype.every.call(all, function (box) { return box.checked; });
    }
  }

  function pickSelection() {
    var scope = document.querySelector("#bulk-form input[name=scope][value=ids]");
    if (scope) scope.checked = true;
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (!target.matches) return;
    if (target.matches("input.run-check")) {
      if (target.checked) { selected.add(target.value); pickSelection(); } else selected.delete(target.value);
      refresh();
    } else if (target.matches("input[data-check-page]")) {
      boxes().forEach(function (box) {
        if (target.checked) selected.add(box.value); else selected.delete(box.value);
      });
      if (target.checked) pickSelection();
      refresh();
    }
  });

  function currentQuery() { return window.location.search.replace(/^\?/, ""); }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.matches && form.matches("form[data-save-view]")) {
      form.querySelector("[data-current-query]").value = currentQuery();
    }
  }, true);

  // Every column shown is the default: the URL then says nothing about columns.
  document.addEventListener("htmx:configRequest", function (event) {
    var form = event.detail.elt && event.detail.elt.closest && event.detail.elt.closest("form#filters");
    if (!form) return;
    var all = form.querySelectorAll("input[name=columns]");
    var checked = form.querySelectorAll("input[name=columns]:checked");
    if (all.length && checked.length === all.length) event.detail.parameters.delete("columns");
  });

  document.addEventListener("htmx:configRequest", function (event) {
    var elt = event.detail.elt;
    var form = elt && elt.closest && elt.closest("#bulk-form");
    if (!form) return;
    var params = event.detail.parameters;
    params.set("query", currentQuery());
    params.delete("ids");
    selected.forEach(function (id) { params.append("ids", id); });
  });

  // Refusals (400) are shown in the dialog, like a preview.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (target && target.id === "bulk-dialog-body" && event.detail.xhr.status === 400) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (!target) return;
    if (target.id === "bulk-dialog-body") {
      var box = dialog();
      if (box && !box.open) box.showModal();
    }
    if (target.id === "run-table") {
      var source = event.detail.requestConfig && event.detail.requestConfig.elt;
      if (source && source.closest && source.closest("form#filters")) selected.clear();
      refresh();
    }
  });

  document.addEventListener("click", function (event) {
    var close = event.target.closest && event.target.closest("[data-bulk-close]");
    if (!close) return;
    var box = dialog();
    if (box) box.close();
  });

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", refresh);
  else refresh();
})();
