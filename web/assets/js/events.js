// The live event stream (/api/events) with reconnection. A lost stream is retried with
// growing pauses (1 s … 15 s) and the page is told its state, so it can say so:
//   onState('connecting' | 'live' | 'reconnecting')
// After a reconnect the page gets onEvent({ type: 'resync' }) and should reload what
// it shows, since events sent meanwhile were missed (as after a `lagged` event).
import { api, eventsUrl } from './api.js';

export const EVENT_TYPES = [
  'run_started', 'model_result', 'run_completed', 'target_updated',
  'target_deleted', 'models_changed', 'lagged',
];

export function connectEvents({ onEvent, onState = () => {} }) {
  let source = null;
  let timer = null;
  let attempt = 0;
  let closed = false;
  let everLive = false;

  function open() {
    if (closed) return;
    onState(everLive ? 'reconnecting' : 'connecting');
    source = new EventSource(eventsUrl());
    source.addEventListener('connected', () => {
      const wasLost = everLive && attempt > 0;
      attempt = 0;
      everLive = true;
      onState('live');
      if (wasLost) onEvent({ type: 'resync' });
    });
    for (const name of EVENT_TYPES) {
      source.addEventListener(name, (msg) => {
        let data = {};
        try { data = JSON.parse(msg.data); } catch { /* not JSON: keep the name */ }
        onEvent({ ...data, type: name });
        if (name === 'lagged') onEvent({ type: 'resync' });
      });
    }
    source.onerror = () => {
      source.close();
      source = null;
      if (closed) return;
      attempt += 1;
      onState(everLive ? 'reconnecting' : 'connecting');
      // A stream refused for its token looks like any other error here: one API
      // call lets the API client ask for a token when that is the reason.
      if (attempt === 2) api('/api/dashboard').catch(() => {});
      const pause = Math.min(15000, 1000 * 2 ** Math.min(attempt - 1, 4));
      timer = setTimeout(open, pause);
    };
  }

  open();
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      if (source) source.close();
    },
  };
}
