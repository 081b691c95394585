// Pipeline charts: drag across a chart's time axis to show that window (?start=&end=). Points
// are plain links, so clicking one opens its run without this script.
(function () {
  "use strict";

  var MIN_DRAG_PX = 6;

  function toChartX(svg, clientX) {
    var point = svg.createSVGPoint();
    point.x = clientX;
    point.y = 0;
    return point.matrixTransform(svg.getScreenCTM().inverse()).x;
  }

  function timeAt(svg, x) {
    var left = Number(svg.dataset.left), right = Number(svg.dataset.right);
    var start = Number(svg.dataset.start), end = Number(svg.dataset.end);
    var fraction = Math.min(1, Math.max(0, (x - left) / (right - left)));
    return new Date(start + fraction * (end - start));
  }

  function go(svg, fromX, toX) {
    var a = timeAt(svg, Math.min(fromX, toX)), b = timeAt(svg, Math.max(fromX, toX));
    var params = new URLSearchParams(window.location.search);
    params.delete("window");
    params.set("start", a.toISOString());
    params.set("end", b.toISOString());
    window.location.search = params.toString();
  }

  var drag = null;

  document.addEventListener("pointerdown", function (event) {
    var svg = event.target.closest("[data-chart-drag] svg.pchart");
    if (!svg || event.button !== 0) return;
    var x = toChartX(svg, event.clientX);
    var rect = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    rect.setAttribute("class", "drag-window");
    rect.setAttribute("x", x);
    rect.setAttribute("y", svg.dataset.top);
    rect.setAttribute("width", 0);
    rect.setAttribute("height", Number(svg.dataset.bottom) - Number(svg.dataset.top));
    svg.appendChild(rect);
    drag = { svg: svg, rect: rect, x: x, clientX: event.clientX, moved: false };
  });

  document.addEventListener("pointermove", function (event) {
    if (!drag) return;
    if (Math.abs(event.clientX - drag.clientX) >= MIN_DRAG_PX) drag.moved = true;
    var x = toChartX(drag.svg, event.clientX);
    drag.rect.setAttribute("x", Math.min(x, drag.x));
    drag.rect.setAttribute("width", Math.abs(x - drag.x));
    if (drag.moved) event.preventDefault();
  });

  document.addEventListener("pointerup", function (event) {
    if (!drag) return;
    var current = drag;
    drag = null;
    current.rect.remove();
    if (!current.moved) return; // a click: let the point's link (if any) do its job
    // A drag that ends on a point must not also follow the point's link.
    document.addEventListener("click", function swallow(click) {
      click.preventDefault();
      click.stopPropagation();
      document.removeEventListener("click", swallow, true);
    }, true);
    go(current.svg, current.x, toChartX(current.svg, event.clientX));
  });

  document.addEventListener("dragstart", function (event) {
    if (event.target.closest && event.target.closest("[data-chart-drag]")) event.preventDefault();
  });
})();
