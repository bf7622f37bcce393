// The compact history form of the target list (`?history_format=compact`): per target
// `history_runs` ([run_id, unix seconds], oldest first), per model `history` with one
// character per run for the status (`s`), one for the total time (`l`) and the error
// class of failures by position (`e`). See README "HTTP API".
const BUCKETS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const STATUS = { 1: 'ok', 2: 'slow', 0: 'fail', '-': null };

/** → [{ runId, ts, status: 'ok'|'slow'|'fail'|null, ms, errorClass }] oldest first. */
export function decodeHistory(runs, history) {
  if (!history || typeof history.s !== 'string') return [];
  const points = [];
  for (let i = 0; i < history.s.length; i += 1) {
    const run = runs && runs[i] ? runs[i] : [null, null];
    const bucket = BUCKETS.indexOf(history.l ? history.l[i] : '.');
    points.push({
      runId: run[0],
      ts: run[1],
      status: STATUS[history.s[i]] ?? null,
      ms: bucket >= 0 ? 1.25 ** (bucket - 0.5) : null,
      errorClass: history.e ? history.e[String(i)] || null : null,
    });
  }
  return points;
}
