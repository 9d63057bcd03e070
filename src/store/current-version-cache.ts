/**
 * A bounded cache of the current version of recently read or written resources, for store
 * adapters whose process is the only writer of their database: the adapter updates it after
 * each COMMIT, so it never serves a version older than the last acknowledged write.
 * Hot reads (an app re-reading its patient) then skip the database entirely.
 *
 * Eviction is second-chance (CLOCK), an approximation of least-recently-used: a hit only marks
 * its entry, where a strict LRU moved it to the end of the map on every read (a delete and an
 * insert per hit, which showed in the read profile). Beyond capacity, the oldest entry not
 * marked since it was last passed over goes; marked ones are unmarked and moved to the end.
 */
import type { StoredVersion } from './store.js';

interface Entry {
  version: StoredVersion;
  /** Read or replaced since eviction last passed over it. */
  referenced: boolean;
}

export class CurrentVersionCache {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly capacity: number) {}

  private static key(resourceType: string, id: string): string {
    return `${resourceType}/${id}`;
  }

  get(resourceType: string, id: string): StoredVersion | undefined {
    if (this.capacity === 0) return undefined;
    const entry = this.entries.get(CurrentVersionCache.key(resourceType, id));
    if (!entry) return undefined;
    entry.referenced = true;
    return entry.version;
  }

  set(version: StoredVersion): void {
    if (this.capacity === 0) return;
    const key = CurrentVersionCache.key(version.resourceType, version.id);
    const existing = this.entries.get(key);
    if (existing) {
      existing.version = version;
      existing.referenced = true;
      return;
    }
    // Room is made first, so the entry being added is never the one evicted.
    if (this.entries.size >= this.capacity) this.evictOne();
    this.entries.set(key, { version, referenced: false });
  }

  clear(): void {
    this.entries.clear();
  }

  private evictOne(): void {
    // Terminates: every marked entry is unmarked as it is moved, so a second pass finds one.
    for (const [key, entry] of this.entries) {
      this.entries.delete(key);
      if (!entry.referenced) return;
      entry.referenced = false;
      this.entries.set(key, entry);
    }
  }
}
