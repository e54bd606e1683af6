// Fleet page: applies "fleet" events to the server-rendered rows (texts come formatted from the server), and fetches
// the rows again (/dashboard/fleet-rows, the same Razor component, with the page's own filter and sort) when an event
// names a JVM the page does not know, misses one it knows, or changes a status: at most once per refreshMinMs.
import { connect, setBanner, ago } from './live.js';

const statusText = { live: '● live', stale: '◐ stale', gone: '○ gone', unreadable: '⚠ unreadable' };

/** Each fetch renders the whole filtered fleet on the server: a busy fleet must not make every browser ask every poll. */
export const refreshMinMs = 10000;

export function startFleet(initial) {
  let container = initial;
  let rows = new Map();
  let known = {};
  const state = { updates: 0, lastEvent: null, refreshes: 0, refreshPending: false };
  window.apmFleet = state;

  const index = () => {
    rows = new Map();
    for (const tr of container.querySelectorAll('tr[data-jvm-id]')) rows.set(tr.dataset.jvmId, tr);
    known = JSON.parse(container.dataset.known || '{}');
  };
  index();

  let lastRefresh = Date.now(); // drawing the page counts as one
  let timer = null;
  let fetching = false;

  const refresh = async () => {
    timer = null;
    if (fetching) return;
    fetching = true;
    lastRefresh = Date.now();
    try {
      const r = await fetch('dashboard/fleet-rows' + location.search, { headers: { Accept: 'text/html' } });
      if (!r.ok) return;
      // Parsed into an inert document (no script runs) and adopted node by node: the server's HTML encoding holds.
      const fresh = new DOMParser().parseFromString(await r.text(), 'text/html').getElementById('fleet-rows');
      if (!fresh) return;
      const focused = container.contains(document.activeElement) ? document.activeElement.closest('tr[data-jvm-id]')?.dataset.jvmId : undefined;
      const replacement = document.adoptNode(fresh);
      container.replaceWith(replacement);
      container = replacement;
      index();
      state.refreshes++;
      state.refreshPending = false;
      if (focused) rows.get(focused)?.querySelector('th.jvm a')?.focus();
    } catch {
      // The next event that still differs schedules another try.
    } finally {
      fetching = false;
    }
  };

  const scheduleRefresh = () => {
    state.refreshPending = true;
    if (timer !== null) return;
    timer = setTimeout(refresh, Math.max(0, lastRefresh + refreshMinMs - Date.now()));
  };

  connect('', {
    fleet: (ev) => {
      let changed = false;
      const seen = new Set();
      for (const r of ev.rows) {
        seen.add(r.id);
        if (known[r.id] !== r.status) changed = true;
        const tr = rows.get(r.id);
        if (!tr) continue;
        const status = tr.querySelector('td[data-col="status"]');
        status.textContent = statusText[r.status] ?? ('? ' + r.status);
        status.className = 'status status-' + r.status;
        const cells = tr.querySelectorAll('td.num');
        r.cells.forEach((text, i) => {
          const cell = cells[i];
          if (!cell) return;
          cell.querySelector('.value').textContent = text;
          const meter = cell.querySelector('meter');
          if (meter && r.ratios[i] !== null) meter.value = r.ratios[i];
        });
        const alerts = tr.querySelector('td[data-col="alerts"]');
        alerts.textContent = r.alerts;
        alerts.classList.toggle('firing', r.alerts !== 'none');
        tr.querySelector('td.spark polyline')?.setAttribute('points', r.spark);
      }
      if (Object.keys(known).some((id) => !seen.has(id))) changed = true;
      if (changed) scheduleRefresh();
      state.updates++;
      state.lastEvent = ev;
      const updated = document.getElementById('fleet-updated');
      if (updated) updated.textContent = new Date(ev.nowMs).toISOString().substring(11, 19) + ' UTC';
      setBanner('stale', ev.stale && ev.newestSampleMs
        ? 'Data is stale: the newest sample is ' + ago(ev.nowMs - ev.newestSampleMs) + ' old. The collector, Kafka, the aggregator or InfluxDB may have stopped.'
        : null);
    },
  });
}
