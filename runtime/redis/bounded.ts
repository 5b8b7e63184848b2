/**
 * A set that keeps at most `max` members, forgetting the oldest first: the per-host caches of
 * the Redis stores are bounded, whatever a deployment holds.
 */
export class BoundedSet {
  readonly #max: number
  readonly #items = new Set<string>()

  constructor(max: number) {
    if (!Number.isSafeInteger(max) || max < 1) {
      throw new TypeError('max must be a positive integer')
    }
    this.#max = max
  }

  has(item: string): boolean {
    return this.#items.has(item)
  }

  add(item: string): void {
    this.#items.delete(item)
    this.#items.add(item)
    if (this.#items.size > this.#max) {
      this.#items.delete(this.#items.values().next().value as string)
    }
  }

  delete(item: string): void {
    this.#items.delete(item)
  }

  clear(): void {
    this.#items.clear()
  }

  get size(): number {
    return this.#items.size
  }
}
