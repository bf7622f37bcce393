// The analysis page's arithmetic, kept apart from drawing: rollup rows (per model and
// hour or day, from GET /api/targets/{id}/stats) folded into time series, windows and
// per-model figures. Percentiles cannot be merged exactly from percentiles, so "all
// models" figures are per-model percentiles averaged with the probe counts as weights
// (the page says so); one model's figures are its own.

export const WINDOWS = {
  '24h': { period: 'hour', step: 3600, seconds: 86400 },
  '7d': { period: 'hour', step: 3600, seconds: 7 * 86400 },
  '30d': { period: 'day', step: 86400, seconds: 30 * 86400 },
};

/** The rollup rows of a window (and of one model, when given). */
export function inWindow(rows, windowKey, model, now = Date.now() / 1000) {
  const w = WINDOWS[windowKey];
  const from = Math.floor((now - w.seconds) / w.step) * w.step;
  return rows.filter((r) => r.bucket_start >= from && (!model || r.model === model));
}

function weighted(pairs) {
  let sum = 0;
  let weight = 0;
  for (const [value, w] of pairs) {
    if (value === null || value === undefined || !w) continue;
    sum += value * w;
    weight += w;
  }
  return weight ? sum / weight : null;
}

/** Totals of a set of rollup rows. */
export function totals(rows) {
  const t = { count: 0, success: 0, slow: 0, fail: 0, classes: {}, models: new Set() };
  for (const r of rows) {
    t.count += r.count;
    t.success += r.success;
    t.slow += r.slow;
    t.models.add(r.model);
    for (const [c, n] of Object.entries(r.error_classes || {})) t.classes[c] = (t.classes[c] || 0) + n;
  }
  t.fail = t.count - t.success;
  // Percentiles of passing probes: weight by passing probes.
  t.p50 = weighted(rows.map((r) => [r.latency_p50_ms, r.success]));
  t.p95 = weighted(rows.map((r) => [r.latency_p95_ms, r.success]));
  t.ttft = weighted(rows.map((r) => [r.ttft_p50_ms, r.success]));
  t.rate = t.count ? (100 * t.success) / t.count : null;
  return t;
}

/** Every bucket of a window, oldest first, with what the rows say of it (null where
 * nothing was probed, so the charts show a gap rather than a zero). */
export function series(rows, windowKey, now = Date.now() / 1000) {
  const w = WINDOWS[windowKey];
  const first = Math.floor((now - w.seconds) / w.step) * w.step;
  const last = Math.floor(now / w.step) * w.step;
  const byBucket = new Map();
  for (const r of rows) {
    if (!byBucket.has(r.bucket_start)) byBucket.set(r.bucket_start, []);
    byBucket.get(r.bucket_start).push(r);
  }
  const out = { x: [], rate: [], p50: [], p95: [], ttft: [], classes: {}, count: [] };
  const buckets = [];
  for (let b = first; b <= last; b += w.step) buckets.push(b);
  for (const b of buckets) {
    const t = byBucket.has(b) ? totals(byBucket.get(b)) : null;
    out.x.push(b);
    out.count.push(t ? t.count : 0);
    out.rate.push(t && t.count ? t.rate : null);
    out.p50.push(t ? t.p50 : null);
    out.p95.push(t ? t.p95 : null);
    out.ttft.push(t ? t.ttft : null);
    for (const c of Object.keys(t ? t.classes : {})) out.classes[c] = out.classes[c] || null;
  }
  for (const c of Object.keys(out.classes)) {
    out.classes[c] = out.x.map((b) => {
      const rs = byBucket.get(b) || [];
      return rs.reduce((n, r) => n + ((r.error_classes || {})[c] || 0), 0);
    });
  }
  return out;
}

/** Per model: totals over the rows given, sorted by name. */
export function perModel(rows) {
  const by = new Map();
  for (const r of rows) {
    if (!by.has(r.model)) by.set(r.model, []);
    by.get(r.model).push(r);
  }
  return [...by.entries()]
    .map(([model, rs]) => ({ model, ...totals(rs) }))
    .sort((a, b) => a.model.localeCompare(b.model));
}

/** The most frequent class of a classes map, or null. */
export function topClass(classes) {
  let best = null;
  for (const [c, n] of Object.entries(classes || {})) if (!best || n > best[1]) best = [c, n];
  return best ? best[0] : null;
}
