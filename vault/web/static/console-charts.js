// Draws the compliance console's charts from the JSON block the page embeds (#console-chart-data), with the
// vendored Chart.js. Without script the page shows the same numbers as tables; with it, the tables fold away.
(function () {
  "use strict";
  var source = document.getElementById("console-chart-data");
  if (!source || typeof window.Chart === "undefined") {
    return;
  }
  var data = JSON.parse(source.textContent);
  var Chart = window.Chart;
  var style = getComputedStyle(document.body);
  // Okabe-Ito: told apart with any colour vision, readable on the light and the dark theme
  var palette = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#999999"];

  Chart.defaults.color = style.color;
  Chart.defaults.borderColor = style.getPropertyValue("--line").trim() || "rgba(128, 128, 128, 0.3)";
  Chart.defaults.font.family = style.fontFamily;
  Chart.defaults.maintainAspectRatio = false;
  if (window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches) {
    Chart.defaults.animation = false;
  }

  function countAxis(title) {
    return { beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: title } };
  }

  // long service item names on a narrow screen: several short lines instead of a label cut off at the edge
  function wrapped(label, width) {
    var room = Math.max(8, Math.floor(width / 28));
    var lines = [];
    var rest = String(label);
    while (rest.length > room) {
      var cut = rest.lastIndexOf(" ", room);
      cut = cut > 0 ? cut : room;
      lines.push(rest.slice(0, cut));
      rest = rest.slice(cut).trim();
    }
    lines.push(rest);
    return lines;
  }

  function sectionWidth(id) {
    var canvas = document.getElementById(id);
    var section = canvas && canvas.closest("section");
    return section ? section.clientWidth : 360;
  }

  function draw(id, config) {
    var canvas = document.getElementById(id);
    if (!canvas) {
      return;
    }
    var section = canvas.closest("section");
    canvas.parentElement.hidden = false;
    var table = section && section.querySelector("details.chart-table");
    if (table) {
      table.open = false;
    }
    new Chart(canvas, config);
  }

  draw("chart-accesses", {
    type: "line",
    data: {
      labels: data.days,
      datasets: data.accesses.map(function (series, n) {
        var colour = palette[n % palette.length];
        return { label: series.label, data: series.counts, borderColor: colour, backgroundColor: colour, tension: 0.2 };
      })
    },
    options: {
      interaction: { mode: "index", intersect: false },
      scales: { y: countAxis(data.text.reads) }
    }
  });

  draw("chart-consent", {
    type: "bar",
    data: {
      labels: data.consent.map(function (item) { return wrapped(item.label, sectionWidth("chart-consent")); }),
      datasets: [
        { label: data.text.approved, data: data.consent.map(function (item) { return item.approved; }), backgroundColor: "#009e73" },
        { label: data.text.denied, data: data.consent.map(function (item) { return item.denied; }), backgroundColor: "#d55e00" }
      ]
    },
    options: {
      indexAxis: "y",
      scales: { x: countAxis(data.text.decisions) }
    }
  });

  draw("chart-saved", {
    type: "bar",
    data: {
      labels: data.days,
      datasets: [{ label: data.text.submissions, data: data.submissions_saved.counts, backgroundColor: "#0072b2" }]
    },
    options: {
      plugins: { legend: { display: false } },
      scales: { y: countAxis(data.text.submissions) }
    }
  });
})();
