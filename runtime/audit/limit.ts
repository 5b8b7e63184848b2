/**
 * Internal: a small semaphore, so that full reads of the audit log (`GET /v1/audit` with
 * filters reads the whole file) run only a few at a time however many requests ask.
 */

/** Run at most `max` of the tasks given at once; the others wait their turn, in order. */
export function createLimit(max: number): <T>(task: () => Promise<T>) => Promise<T> {
  let active = 0
  const waiting: (() => void)[] = []
  return async (task) => {
    if (active < max) {
      active++
    } else {
      await new Promise<void>((resolve) => waiting.push(resolve))
    }
    try {
      return await task()
    } finally {
      const next = waiting.shift()
      if (next) {
        next() // the slot passes on
      } else {
        active--
      }
    }
  }
}
