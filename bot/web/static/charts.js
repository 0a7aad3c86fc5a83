// Draws every chart of the page: each <script type="application/json" class="chart" data-target="ID"> holds a
// Plotly figure ({data, layout}) for the element with that id. No inline script: the CSP allows only our files.
(function () {
  "use strict";
  var FONT = { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12, color: "#1d2430" };

  function draw(block) {
    var target = document.getElementById(block.getAttribute("data-target"));
    if (!target || typeof Plotly === "undefined") { return; }
    var figure;
    try { figure = JSON.parse(block.textContent); } catch (e) { return; }
    var layout = Object.assign({
      autosize: true,
      hovermode: "closest",
      margin: { l: 48, r: 16, t: 40, b: 44 },
      legend: { orientation: "h", y: -0.2, font: { size: 11 } },
      paper_bgcolor: "#fff",
      plot_bgcolor: "#fff"
    }, figure.layout || {});
    layout.font = Object.assign({}, FONT, layout.font || {});
    if (layout.font.size < 11) { layout.font.size = 11; }
    if (layout.title && layout.title.text) {
      layout.title = Object.assign({ x: 0, xanchor: "left", font: { size: 14 } }, layout.title);
    }
    ["xaxis", "yaxis"].forEach(function (axis) {
      layout[axis] = Object.assign({ automargin: true, tickfont: { size: 11 } }, layout[axis] || {});
    });
    Plotly.newPlot(target, figure.data || [], layout, { responsive: true, displaylogo: false,
                                                        modeBarButtonsToRemove: ["lasso2d", "select2d"] });
  }

  function drawAll() {
    var blocks = document.querySelectorAll('script[type="application/json"].chart');
    for (var i = 0; i < blocks.length; i++) { draw(blocks[i]); }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawAll);
  } else {
    drawAll();
  }
})();
