/** Which labels an issue's text talks about: pure, so it is easy to test on its own. */

/** A label as the GitHub API lists it. */
export interface Label {
  name: string
  description?: string | null
}

/** Words that point at a label beyond its own name. */
const SYNONYMS: Readonly<Record<string, readonly string[]>> = {
  bug: ['crash', 'error', 'broken', 'fails', 'exception', 'regression'],
  documentation: ['docs', 'readme', 'typo'],
  enhancement: ['feature', 'support', 'would be nice', 'add a'],
  performance: ['slow', 'latency', 'memory', 'cpu'],
  security: ['vulnerability', 'cve', 'xss', 'injection', 'leak'],
}

/** Labels whose name, or one of its synonyms, appears in `text` (case-insensitive), sorted. */
export function suggestLabels(text: string, labels: readonly Label[]): string[] {
  const haystack = text.toLowerCase()
  const out = new Set<string>()
  for (const label of labels) {
    if (typeof label?.name !== 'string') {
      continue
    }
    const name = label.name.toLowerCase()
    const words = [name, ...(SYNONYMS[name] ?? [])]
    if (words.some((w) => haystack.includes(w))) {
      out.add(label.name)
    }
  }
  return [...out].sort()
}
