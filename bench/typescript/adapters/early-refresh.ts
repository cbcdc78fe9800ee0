// early-refresh: getWithRefresh(key, loader, 3600) on a key its first call loaded.
// The loader returns at once, so the entry's delta (load time) is a millisecond at most
// and XFetch never refreshes an hour-long entry early: every call is a plain hit.

import type { Client, HitPath, Loads } from "../hit-path.js";
import { EarlyRefreshCache } from "../rendered/earlyRefresh.js";

export function createHitPath(
  client: Client,
  value: unknown,
  loads: Loads,
): HitPath {
  // background: true, as section 2 constructs the Python one (a refresh would not make
  // the caller wait); a hit is the same either way.
  const cache = new EarlyRefreshCache(client, { background: true });
  const loader = (): unknown => {
    loads.count += 1;
    return value;
  };
  return {
    fill: async (key) => {
      await cache.getWithRefresh(key, loader, 3600);
    },
    hit: (key) => cache.getWithRefresh(key, loader, 3600),
  };
}
