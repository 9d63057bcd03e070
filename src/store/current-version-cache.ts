/**
 * A bounded LRU of the current version of recently read or written resources, for store
 * adapters whose process is the only writer of their database: the adapter updates it after
 * each COMMIT, so it never serves a version older than the last acknowledged write.
 * Hot reads (an app re-reading its patient) then skip the database entirely.
 */
import type { StoredVersion } from './store.js';

export class CurrentVersionCache {
  private readonly entries = new Map<string, StoredVersion>();

  constructor(private readonly capacity: number) {}

  private static key(resourceType: string, id: string): string {
    return `${resourceType}/${id}`;
  }

  get(resourceType: string, id: string): StoredVersion | undefined {
    if (this.capacity === 0) return undefined;
    const key = CurrentVersionCache.key(resourceType, id);
    const hit = this.entries.get(key);
    if (hit) {
      // Map keeps insertion order: re-inserting marks the entry most recently used.
      this.entries.delete(key);
      this.entries.set(key, hit);
    }
    return hit;
  }

  set(version: StoredVersion): void {
    if (this.capacity === 0) return;
    const key = CurrentVersionCache.key(version.resourceType, version.id);
    this.entries.delete(key);
    this.entries.set(key, version);
    if (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value!);
  }

  clear(): void {
    this.entries.clear();
  }
}
