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
 * served an earlier run of the same component, zeroed entirely as it is handed out.
 *
 * Why the next run cannot tell the two apart, or read anything of the run before:
 * - a new instance gets a memory of exactly its declared minimum: one that grew is never kept,
 *   so `memory.size` and every byte past the data segments read as in a fresh one;
 * - every byte is zeroed when the memory is handed out ({@link MemoryShelf.take}), and the
 *   instance's data segments are written at its instantiation, as they would be into a fresh
 *   memory;
 * - nothing can write the memory after its run answered: the worker never returns to its event
 *   loop (no finalizer, promise reaction or timer of the old instance ever runs), so the old
 *   instance's code and glue run only inside their run, before {@link MemoryShelf.give};
 * - a memory goes back only to the component that used it, never to another tenant's.
 * The tests in `test/memory-reuse.test.ts` try to read a previous run's bytes and size.
 *
 * Who pays for the zeroing: the run, or the preparation, that takes the memory, inside its own
 * time. Zeroing a memory as it was given back, after its run's result was posted, was work the
 * pool did not see: a component with a 64 MiB memory it never touched made every next run on
 * its worker wait ~30 ms for the page faults (tenth outside attack). So it is done in `take`,
 * and memories over {@link MAX_KEPT_MEMORY_BYTES} are not kept at all (a fresh one costs V8 no
 * zeroing: the kernel hands out zero pages on first touch).
 */
import type { ProvidedMemory } from './protocol.js'

/** The size of a WebAssembly page. */
const PAGE_BYTES = 65_536

/** Bytes of kept memories one worker holds, over every component: the oldest go first. */
export const SPARE_MEMORY_BYTES = 64 * 1024 * 1024

/** The largest memory kept for a next run (a componentize-js guest's is 9.5 MB). */
export const MAX_KEPT_MEMORY_BYTES = 16 * 1024 * 1024

/** Memories of earlier runs, one per component at most, kept in the order they were given back. */
export class MemoryShelf<Owner extends object> {
  readonly #spares = new Map<Owner, WebAssembly.Memory>()
  readonly #capacity: number
  readonly #largest: number
  #bytes = 0

  constructor(
    capacityBytes: number = SPARE_MEMORY_BYTES,
    largestBytes: number = MAX_KEPT_MEMORY_BYTES,
  ) {
    this.#capacity = capacityBytes
    this.#largest = largestBytes
  }

  /**
   * A memory for a new instance of `owner`: its kept one (taken off the shelf and zeroed here, in
   * the caller's time), or a fresh one.
   */
  take(owner: Owner, limits: ProvidedMemory): WebAssembly.Memory {
    const spare = this.#spares.get(owner)
    if (spare !== undefined) {
      this.#spares.delete(owner)
      this.#bytes -= spare.buffer.byteLength
      new Uint8Array(spare.buffer).fill(0)
      return spare
    }
    return new WebAssembly.Memory({ initial: limits.minPages, maximum: limits.maxPages })
  }

  /**
   * After a run of `owner` answered: keep `memory` for the next instance of `owner` (zeroed when
   * it is taken), unless it grew past `limits.minPages` or is larger than the largest kept (then
   * it is left to the collector). Returns whether it was kept. Touches none of its bytes.
   */
  give(owner: Owner, limits: ProvidedMemory, memory: WebAssembly.Memory): boolean {
    const bytes = memory.buffer.byteLength
    if (bytes !== limits.minPages * PAGE_BYTES || bytes > this.#largest || bytes > this.#capacity) {
      return false
    }
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
