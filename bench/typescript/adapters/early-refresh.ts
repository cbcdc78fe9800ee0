// early-refresh: getWithRefresh(key, loader, 3600) on a key its first call loaded.
// The loader returns at once, so the entry's delta (load time) is a millisecond at most
// and XFetch never refreshes an hour-long entry early: every call is a plain hit.

import { countedLoader, type CreateHitPath } from "../hit-path.js";
import { EarlyRefreshCache } from "../rendered/earlyRefresh.js";

export const createHitPath: CreateHitPath = (client, value, loads) => {
  // background: true, as section 2 constructs the Python one (a refresh would not make
  // the caller wait); a hit is the same either way.
  const cache = new EarlyRefreshCache(client, { background: true });
  const loader = countedLoader(value, loads);
  return {
    fill: async (key) => {
      await cache.getWithRefresh(key, loader, 3600);
    },
    hit: (key) => cache.getWithRefresh(key, loader, 3600),
  };
};
