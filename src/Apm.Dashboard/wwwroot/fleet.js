// Fleet page: applies "fleet" events to the server-rendered rows (texts come formatted from the server).
import { connect, setBanner, ago } from './live.js';

const statusText = { live: '● live', stale: '◐ stale', gone: '○ gone', unreadable: '⚠ unreadable' };

export function startFleet(table) {
  const rows = new Map();
  for (const tr of table.querySelectorAll('tr[data-jvm-id]')) rows.set(tr.dataset.jvmId, tr);
  const state = { updates: 0, lastEvent: null, unknown: 0 };
  window.apmFleet = state;
  const updated = document.getElementById('fleet-updated');
  const notice = document.getElementById('fleet-new');

  connect('', {
    fleet: (ev) => {
      let unknown = 0;
      for (const r of ev.rows) {
        const tr = rows.get(r.id);
        if (!tr) { unknown++; continue; }
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
      state.updates++;
      state.lastEvent = ev;
      state.unknown = unknown;
      if (updated) updated.textContent = new Date(ev.nowMs).toISOString().substring(11, 19) + ' UTC';
      if (notice) {
        notice.hidden = unknown === 0;
        notice.querySelector('span').textContent = unknown === 1 ? '1 more JVM' : unknown + ' more JVMs';
      }
      setBanner('stale', ev.stale && ev.newestSampleMs
        ? 'Data is stale: the newest sample is ' + ago(ev.nowMs - ev.newestSampleMs) + ' old. The collector, Kafka, the aggregator or InfluxDB may have stopped.'
        : null);
    },
  });
}
