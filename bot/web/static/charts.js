// Draws every chart of the page: each <script type="application/json" class="chart" data-target="ID"> holds a
// Plotly figure ({data, layout}) for the element with that id. No inline script: the CSP allows only our files.
(function () {
  "use strict";
  var FONT = { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12, color: "#1d2430" };

  // A count that stays small (members, messages of one member) got ticks at 0.5 — and, with a whole-number
  // format, the same label twice ("1, 1, 2, 2"): when every value on a y axis or in a heatmap is a whole
  // number and they span at most 5, tick every 1.
  function wholeNumberTicks(data, layout) {
    var values = {};
    data.forEach(function (trace) {
      if (trace.type === "heatmap" || trace.orientation === "h" || !Array.isArray(trace.y)) { return; }
      var axis = trace.yaxis && trace.yaxis !== "y" ? "yaxis" + trace.yaxis.slice(1) : "yaxis";
      values[axis] = (values[axis] || []).concat(trace.y);
    });
    Object.keys(values).forEach(function (axis) {
      var ys = values[axis].concat([0]);
      if (!ys.every(Number.isInteger) || Math.max.apply(null, ys) - Math.min.apply(null, ys) > 5) { return; }
      var given = layout[axis] || {};
      if (given.dtick === undefined) { layout[axis] = Object.assign({}, given, { tickmode: "linear", dtick: 1, tick0: 0 }); }
    });
    data.forEach(function (trace) {
      if (trace.type !== "heatmap" || !Array.isArray(trace.z)) { return; }
      var zs = [].concat.apply([0], trace.z);
      if (zs.every(Number.isInteger) && Math.max.apply(null, zs) - Math.min.apply(null, zs) <= 5) {
        trace.colorbar = Object.assign({ dtick: 1 }, trace.colorbar || {});
      }
    });
  }

  function draw(block) {
    var target = document.getElementById(block.getAttribute("data-target"));
    if (!target || typeof Plotly === "undefined") { return; }
    var figure;
    try { figure = JSON.parse(block.textContent); } catch (e) { return; }
    var layout = Object.assign({
      autosize: true,
      hovermode: "closest",
      margin: { l: 48, r: 16, t: 24, b: 44 },
      // The section's heading names the chart; the legend goes above the plot, clear of the axis titles.
      legend: { orientation: "h", x: 0, y: 1.02, xanchor: "left", yanchor: "bottom", font: { size: 11 } },
      paper_bgcolor: "#fff",
      plot_bgcolor: "#fff"
    }, figure.layout || {});
    layout.font = Object.assign({}, FONT, layout.font || {});
    if (layout.font.size < 11) { layout.font.size = 11; }
    delete layout.title;  // the page's heading above the chart says what it shows
    ["xaxis", "yaxis", "yaxis2"].forEach(function (axis) {
      if (axis === "yaxis2" && !layout.yaxis2) { return; }
      layout[axis] = Object.assign({ automargin: true, tickfont: { size: 11 } }, layout[axis] || {});
    });
    wholeNumberTicks(figure.data || [], layout);
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
