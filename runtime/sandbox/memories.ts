/**
 * Reset memories for the next run of the same component, in one sandbox worker.
 *
 * A fresh `WebAssembly.Memory` is the dearest part of a fresh instance of a large guest: for a
 * componentize-js guest (145 pages, 9.5 MB) V8 reserves its address space, the run faults every
 * page it touches in, and the collector later unmaps it on its helper threads — 1.9 ms of CPU
 * against 0.13 ms for zeroing a kept one and writing the data segments again (measured on a
 * 145-page module with a 2.7 MB data segment; bench/README.md, "Reset memories"). So the loader
 * has each component's one memory imported from `warden:meter` (`InstrumentOptions.provideMemory`)
 * and the worker hands every instance a memory of the declared limits: a fresh one, or one that
 * served an earlier run of the same component and was then zeroed entirely.
 *
 * Why the next run cannot tell the two apart, or read anything of the run before:
 * - a new instance gets a memory of exactly its declared minimum: one that grew is never kept,
 *   so `memory.size` and every byte past the data segments read as in a fresh one;
 * - every byte is zeroed before the memory is kept, and the instance's data segments are written
 *   at its instantiation, as they would be into a fresh memory;
 * - nothing can write the memory after its run answered: the worker never returns to its event
 *   loop (no finalizer, promise reaction or timer of the old instance ever runs), so the old
 *   instance's code and glue run only inside their run, before {@link MemoryShelf.give};
 * - a memory goes back only to the component that used it, never to another tenant's.
 * The tests in `test/memory-reuse.test.ts` try to read a previous run's bytes and size.
 */
import type { ProvidedMemory } from './protocol.js'

/** The size of a WebAssembly page. */
const PAGE_BYTES = 65_536

/** Bytes of reset memories one worker keeps, over every component: the oldest go first. */
export const SPARE_MEMORY_BYTES = 64 * 1024 * 1024

/** Reset memories, one per component at most, kept in the order they were last given back. */
export class MemoryShelf<Owner extends object> {
  readonly #spares = new Map<Owner, WebAssembly.Memory>()
  readonly #capacity: number
  #bytes = 0

  constructor(capacityBytes: number = SPARE_MEMORY_BYTES) {
    this.#capacity = capacityBytes
  }

  /** A memory for a new instance of `owner`: its reset spare (taken off the shelf), or a fresh one. */
  take(owner: Owner, limits: ProvidedMemory): WebAssembly.Memory {
    const spare = this.#spares.get(owner)
    if (spare !== undefined) {
      this.#spares.delete(owner)
      this.#bytes -= spare.buffer.byteLength
      return spare
    }
    return new WebAssembly.Memory({ initial: limits.minPages, maximum: limits.maxPages })
  }

  /**
   * After a run of `owner` answered: zero `memory` and keep it for the next instance of `owner`,
   * unless it grew past `limits.minPages` (then it is left to the collector). Returns whether it
   * was kept.
   */
  give(owner: Owner, limits: ProvidedMemory, memory: WebAssembly.Memory): boolean {
    const bytes = memory.buffer.byteLength
    if (bytes !== limits.minPages * PAGE_BYTES || bytes > this.#capacity) {
      return false
    }
    new Uint8Array(memory.buffer).fill(0)
    this.drop(owner)
    for (const [oldest, kept] of this.#spares) {
      if (this.#bytes + bytes <= this.#capacity) {
        break
      }
      this.#spares.delete(oldest)
      this.#bytes -= kept.buffer.byteLength
    }
    this.#spares.set(owner, memory)
    this.#bytes += bytes
    return true
  }

  /** Forget `owner`'s spare (its component was unloaded). */
  drop(owner: Owner): void {
    const spare = this.#spares.get(owner)
    if (spare !== undefined) {
      this.#spares.delete(owner)
      this.#bytes -= spare.buffer.byteLength
    }
  }

  /** Bytes kept now. */
  get bytes(): number {
    return this.#bytes
  }
}
