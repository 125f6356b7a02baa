/* Dashboard charts (Chart.js, served from /static/vendor) and the operators' verdict buttons. */
(function () {
  "use strict";
  const chartData = document.getElementById("chart-data"); // absent on an event's own page
  const data = chartData ? JSON.parse(chartData.textContent) : null;

  // Draws a vertical dashed line at the latency target on the histogram's category axis.
  const targetLine = {
    id: "targetLine",
    afterDatasetsDraw(chart, _args, options) {
      const x = chart.scales.x;
      const index = options.index;
      if (index === undefined || index < 0) return;
      const left = x.getPixelForValue(index) - (x.getPixelForValue(1) - x.getPixelForValue(0)) / 2;
      const ctx = chart.ctx;
      ctx.save();
      ctx.strokeStyle = "#c0392b";
      ctx.setLineDash([6, 4]);
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.moveTo(left, chart.chartArea.top);
      ctx.lineTo(left, chart.chartArea.bottom);
      ctx.stroke();
      ctx.fillStyle = "#c0392b";
      ctx.fillText(options.label, left + 4, chart.chartArea.top + 12);
      ctx.restore();
    },
  };

  function latencyChart() {
    const h = data.histogram;
    const labels = h.edges.map((e, i) => (i === h.edges.length - 1 ? "≥" + e : e + "–" + h.edges[i + 1]));
    const targetIndex = h.edges.indexOf(h.target_ms);
    const colours = h.edges.map((e) => (e >= h.target_ms ? "#e67e22" : "#2e86c1"));
    new Chart(document.getElementById("latency-chart"), {
      type: "bar",
      data: { labels: labels, datasets: [{ label: "inferences", data: h.counts, backgroundColor: colours }] },
      options: {
        animation: false,
        maintainAspectRatio: false,
        scales: { x: { title: { display: true, text: "end-to-end latency (ms)" } }, y: { beginAtZero: true } },
        plugins: { legend: { display: false }, targetLine: { index: targetIndex, label: h.target_ms + " ms target" } },
      },
      plugins: [targetLine],
    });
  }

  function sparklines() {
    document.querySelectorAll("canvas.spark").forEach(function (canvas) {
      const series = data.kpis[canvas.dataset.series] || [];
      new Chart(canvas, {
        type: "line",
        data: { labels: series.map((_v, i) => i), datasets: [{ data: series, borderWidth: 1.5, pointRadius: 0, spanGaps: true }] },
        options: {
          animation: false,
          responsive: false,
          plugins: { legend: { display: false }, tooltip: { enabled: false } },
          scales: { x: { display: false }, y: { display: false } },
        },
      });
    });
  }

  function roiChart() {
    const canvas = document.getElementById("roi-chart");
    if (!canvas || data.roi.length === 0) return;
    new Chart(canvas, {
      type: "bar",
      data: {
        labels: data.roi.map((r) => r.name),
        datasets: [{ label: "savings per month (EUR)", data: data.roi.map((r) => r.savings), backgroundColor: "#27ae60" }],
      },
      options: { animation: false, maintainAspectRatio: false, indexAxis: "y" },
    });
  }

  function verdictButtons() {
    document.querySelectorAll("button.verdict").forEach(function (button) {
      button.addEventListener("click", async function () {
        const response = await fetch("/api/v1/events/" + button.dataset.id + "/feedback", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ verdict: button.dataset.verdict }),
        });
        if (response.ok) button.parentElement.textContent = button.dataset.verdict.replace("_", " ");
      });
    });
  }

  if (data) {
    latencyChart();
    sparklines();
    roiChart();
  }
  verdictButtons();
  document.body.dataset.chartsReady = "1";
})();
