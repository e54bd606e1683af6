// Server-Sent Events from /dashboard/events and the "data is stale" banner shared by the pages.

const banner = () => document.getElementById('stale-banner');
const reasons = new Map();

/** Shows or clears one reason for the banner (several can hold at once: stale data, lost connection). */
export function setBanner(key, text) {
  if (text) reasons.set(key, text); else reasons.delete(key);
  const b = banner();
  if (!b) return;
  b.textContent = [...reasons.values()].join(' ');
  b.hidden = reasons.size === 0;
  document.body.classList.toggle('is-stale', reasons.size > 0);
}

/** "3 min 20 s" for a duration in milliseconds. */
export function ago(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s >= 3600) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  if (s >= 60) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${s} s`;
}

/** Opens the event stream; handlers maps event names to functions of the parsed data. */
export function connect(query, handlers) {
  const source = new EventSource('dashboard/events' + query);
  let lastEvent = Date.now();
  for (const [name, fn] of Object.entries(handlers)) {
    source.addEventListener(name, (e) => {
      lastEvent = Date.now();
      setBanner('connection', null);
      fn(JSON.parse(e.data));
    });
  }
  source.addEventListener('error', (e) => {
    if (e.data) {
      setBanner('influx', 'Data is stale: ' + JSON.parse(e.data).message);
    } else {
      setBanner('connection', 'Live updates are interrupted; reconnecting…');
    }
  });
  source.addEventListener('open', () => setBanner('connection', null));
  // No event for a while although the stream is open: the server's poller is stuck or the network is.
  setInterval(() => {
    if (Date.now() - lastEvent > 20000) setBanner('connection', 'No live update for ' + ago(Date.now() - lastEvent) + '.');
  }, 5000);
  window.addEventListener('beforeunload', () => source.close());
  return source;
}
