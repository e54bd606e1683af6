// JVM page: draws every panel with uPlot from the server's data-chart attribute, appends live points from "jvm"
// events, and marks alerts on the time axis. window.apmCharts exposes each chart's data (tests read it).
import { connect, setBanner, ago } from './live.js';

// Okabe-Ito: distinguishable with the common color-vision deficiencies.
const palette = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9', '#D55E00', '#8C6D00', '#000000'];
const maxColor = '#555555';

const unitNames = {
  By: 'bytes', 1: '% of wall time', s: 'seconds', '{object}': 'objects', '{thread}': 'threads',
  '{collection}/s': 'collections/s', '{safepoint}/s': 'safepoints/s', '{class}': 'classes',
};

export function unitName(unit) {
  return unitNames[unit] ?? unit.replace(/[{}]/g, '');
}

/** A value with its unit, as the server formats it (KiB/MiB for bytes, percent for ratios). */
export function format(v, unit) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  if (unit === 'By') {
    const names = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let x = Math.abs(v); let i = 0;
    while (x >= 1024 && i < names.length - 1) { x /= 1024; i++; }
    return (v < 0 ? '-' : '') + x.toFixed(i === 0 || x >= 10 ? 0 : 1) + ' ' + names[i];
  }
  if (unit === '1') return (v * 100).toFixed(v * 100 < 10 ? 1 : 0) + ' %';
  if (unit === 's') return v < 1 ? (v * 1000).toFixed(1) + ' ms' : v.toFixed(2) + ' s';
  const suffix = unit.includes('/s') ? '/s' : '';
  return (Math.abs(v) >= 100 || Number.isInteger(v) ? Math.round(v).toLocaleString('en') : v.toFixed(2)) + suffix;
}

function alpha(hex, a) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${n >> 16},${(n >> 8) & 255},${n & 255},${a})`;
}

/** The series in drawing order: for a stacked chart the running sums, top first (each fill covers the ones below). */
function plotData(chart) {
  const xs = chart.x.map((t) => t / 1000);
  const order = [];
  const ys = [];
  const stackIdx = chart.labels.map((_, i) => i).filter((i) => i !== chart.maxIndex);
  if (chart.stacked) {
    const sums = [];
    let running = chart.x.map(() => null);
    for (const i of stackIdx) {
      running = running.map((acc, j) => {
        const v = chart.y[i][j];
        return v === null ? acc : (acc ?? 0) + v;
      });
      sums.push({ i, values: running });
    }
    for (const s of sums.reverse()) { order.push(s.i); ys.push(s.values); }
  } else {
    for (const i of stackIdx) { order.push(i); ys.push(chart.y[i]); }
  }
  if (chart.maxIndex >= 0) { order.push(chart.maxIndex); ys.push(chart.y[chart.maxIndex]); }
  return { data: [xs, ...ys], order };
}

function makePlot(el, chart, markers) {
  const { data, order } = plotData(chart);
  const series = [{ label: 'time' }];
  order.forEach((i) => {
    const isMax = i === chart.maxIndex;
    const color = isMax ? maxColor : palette[i % palette.length];
    series.push({
      label: chart.labels[i],
      stroke: color,
      width: isMax ? 1.5 : 2,
      dash: isMax ? [6, 4] : undefined,
      fill: chart.stacked && !isMax ? alpha(color, 0.55) : undefined,
      spanGaps: true,
      value: (u, v, si, idx) => (idx === null || idx === undefined ? '–' : format(chart.y[i][idx], chart.unit)),
    });
  });
  const width = Math.max(260, el.clientWidth);
  const opts = {
    width,
    height: width < 500 ? 200 : 240,
    series,
    scales: {
      // The server sends only the markers of the page's range: the axis reaches each one, also one after the last sample.
      x: markers.length === 0 ? { time: true } : {
        time: true,
        range: (u, min, max) => {
          const [lo, hi] = markers.reduce(([a, b], m) => [Math.min(a, m.timeMs / 1000), Math.max(b, m.timeMs / 1000)], [min, max]);
          return lo === hi ? [lo - 60, hi + 60] : [lo, hi];
        },
      },
      y: { range: (u, min, max) => [Math.min(0, min ?? 0), (max ?? 1) > 0 ? max * 1.05 : 1] },
    },
    axes: [
      { label: 'time (your time zone)', labelSize: 18, stroke: '#333', grid: { stroke: '#e4e4e4' } },
      {
        label: unitName(chart.unit), labelSize: 18, size: 72, stroke: '#333', grid: { stroke: '#e4e4e4' },
        values: (u, ticks) => ticks.map((t) => format(t, chart.unit)),
      },
    ],
    legend: { live: true },
    cursor: { focus: { prox: 24 } },
    hooks: {
      draw: [(u) => {
        const { ctx } = u;
        const [lo, hi] = [u.scales.x.min, u.scales.x.max];
        ctx.save();
        ctx.strokeStyle = '#D55E00';
        ctx.lineWidth = 2 * devicePixelRatio;
        ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio]);
        // What was drawn, in CSS pixels from the plot area's left edge (tests read it from window.apmCharts).
        const drawn = [];
        for (const m of markers) {
          const t = m.timeMs / 1000;
          if (t < lo || t > hi) continue;
          const x = Math.round(u.valToPos(t, 'x', true));
          ctx.beginPath();
          ctx.moveTo(x, u.bbox.top);
          ctx.lineTo(x, u.bbox.top + u.bbox.height);
          ctx.stroke();
          drawn.push({ rule: m.rule, state: m.state, timeMs: m.timeMs, left: u.valToPos(t, 'x') });
        }
        ctx.restore();
        chart.markersDrawn = drawn;
        chart.plotWidth = u.bbox.width / devicePixelRatio;
      }],
    },
  };
  return new uPlot(opts, data, el);
}

export function startJvm(section) {
  const markers = JSON.parse(section.dataset.alerts || '[]');
  const charts = {};
  window.apmCharts = charts;
  for (const el of section.querySelectorAll('div.chart[data-chart]')) {
    const chart = JSON.parse(el.dataset.chart);
    chart.appended = 0;
    chart.plot = chart.x.length > 0 ? makePlot(el, chart, markers) : null;
    chart.element = el;
    charts[chart.id] = chart;
  }

  const resize = () => {
    for (const c of Object.values(charts)) {
      if (c.plot) c.plot.setSize({ width: Math.max(260, c.element.clientWidth), height: c.element.clientWidth < 500 ? 200 : 240 });
    }
  };
  let pending = null;
  window.addEventListener('resize', () => { clearTimeout(pending); pending = setTimeout(resize, 150); });

  const staleAfter = Number(section.dataset.staleAfterMs);
  const status = document.getElementById('jvm-status');
  const initialStatus = status ? { text: status.textContent, cls: status.className } : null;
  const checkStale = (nowMs, lastMs) => {
    const stale = lastMs > 0 && nowMs - lastMs > staleAfter;
    setBanner('stale', stale ? 'Data is stale: the newest sample of this JVM is ' + ago(nowMs - lastMs) + ' old.' : null);
    if (status && initialStatus && initialStatus.cls.includes('status-live')) {
      status.textContent = stale ? '◐ stale' : initialStatus.text;
      status.className = stale ? 'status status-stale' : initialStatus.cls;
    }
  };
  checkStale(Date.now(), Number(section.dataset.lastSampleMs));
  if (section.dataset.live !== 'true') return;

  const lastSample = document.getElementById('jvm-last-sample');
  connect('?jvm=' + encodeURIComponent(section.dataset.apmJvm), {
    jvm: (ev) => {
      for (const p of ev.panels) {
        const c = charts[p.id];
        if (!c) continue;
        if (c.x.length === 0) {
          // The range had no data when the page was drawn: start the chart from the live window.
          Object.assign(c, { labels: p.labels, x: [], y: p.labels.map(() => []), maxIndex: p.maxIndex });
        }
        const map = c.labels.map((l) => p.labels.indexOf(l));
        const last = c.x.length ? c.x[c.x.length - 1] : -Infinity;
        let added = 0;
        for (let j = 0; j < p.x.length; j++) {
          const t = p.x[j];
          const lastNow = c.x.length ? c.x[c.x.length - 1] : last;
          if (t <= lastNow || (c.stepMs > 0 && t - lastNow < c.stepMs)) continue;
          c.x.push(t);
          c.y.forEach((ys, i) => ys.push(map[i] >= 0 ? p.y[map[i]][j] : null));
          added++;
        }
        if (added === 0) continue;
        c.appended += added;
        if (c.plot) {
          c.plot.setData(plotData(c).data);
        } else {
          c.element.nextElementSibling?.classList.contains('empty') && c.element.nextElementSibling.remove();
          c.plot = makePlot(c.element, c, markers);
        }
      }
      if (ev.lastSampleMs > 0 && lastSample) lastSample.textContent = new Date(ev.lastSampleMs).toISOString().replace('T', ' ').substring(0, 19) + ' UTC';
      checkStale(ev.nowMs, Math.max(ev.lastSampleMs, Number(section.dataset.lastSampleMs)));
    },
  });
}
