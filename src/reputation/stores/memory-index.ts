/**
 * The near-neighbour indexes a store keeps in memory, for the fuzzy schemes that offer one
 * (`FuzzyScheme.newIndex`, today `image:phash256`). The store persists only which items exist,
 * as an append-only log (a SQLite table, a Redis stream); every engine instance replays the log
 * into its own indexes and catches up before each fuzzy lookup, so an item stored by another
 * process (the CLI next to a gateway, another service instance on the same Redis) is found too.
 */
import { fuzzySchemes, type NeighbourIndex } from '../../fingerprint/fuzzy.js';
import { MAX_NEIGHBOURS_JUDGED, fuzzyItem, type FuzzyItem, type Neighbour } from '../engine.js';

/** Ids of the schemes indexed in memory: their items go to the log, not to index keys. */
export const MEMORY_SCHEMES: readonly string[] = fuzzySchemes()
  .filter((s) => s.newIndex !== undefined)
  .map((s) => s.id);

export function inMemory(f: FuzzyItem): boolean {
  return f.scheme.newIndex !== undefined;
}

export class MemoryIndexes {
  readonly #indexes = new Map<string, NeighbourIndex>();

  /** Files a logged item (ignores items of other schemes and items filed before). */
  add(item: string): void {
    const f = fuzzyItem(item);
    if (f === null || f.scheme.newIndex === undefined) return;
    let index = this.#indexes.get(f.scheme.id);
    if (index === undefined) this.#indexes.set(f.scheme.id, (index = f.scheme.newIndex()));
    index.add(item, f.value);
  }

  /** Stored items near `f` other than `exclude` (the exact item), most similar first, at most MAX_NEIGHBOURS_JUDGED. */
  near(f: FuzzyItem, exclude: string): Neighbour[] {
    const index = this.#indexes.get(f.scheme.id);
    if (index === undefined) return [];
    const near = index.near(f.value);
    const out: Neighbour[] = [];
    for (const n of near) {
      if (n.item === exclude) continue;
      out.push(n);
      if (out.length === MAX_NEIGHBOURS_JUDGED) break;
    }
    return out;
  }

  get size(): number {
    let total = 0;
    for (const index of this.#indexes.values()) total += index.size;
    return total;
  }
}
