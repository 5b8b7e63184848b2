/**
 * report-builder: a JSON dataset in, a Markdown or HTML report out. It imports no capability
 * at all (no network, no secrets, no data, not even log), so its risk tier is `low` and an
 * upload is approved without a review.
 */
import { report, type Dataset } from './report.ts'

export function run(input: unknown): unknown {
  return report(parseDataset(input))
}

function parseDataset(input: unknown): Dataset {
  if (typeof input !== 'object' || input === null) {
    throw new Error('input must be an object: { title, rows, groupBy?, sum?, format? }')
  }
  const { title, rows, groupBy, sum, format } = input as Record<string, unknown>
  if (!Array.isArray(rows) || rows.some((r) => typeof r !== 'object' || r === null)) {
    throw new Error('rows must be a list of objects')
  }
  if (format !== undefined && format !== 'markdown' && format !== 'html') {
    throw new Error('format must be "markdown" or "html"')
  }
  return {
    title: typeof title === 'string' ? title : 'Report',
    rows: rows as Record<string, unknown>[],
    ...(typeof groupBy === 'string' ? { groupBy } : {}),
    ...(typeof sum === 'string' ? { sum } : {}),
    format: format ?? 'markdown',
  }
}
