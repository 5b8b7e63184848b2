/** The report itself: a table of the rows, and totals per group when asked. Pure functions. */

export interface Dataset {
  title: string
  rows: Record<string, unknown>[]
  /** Group rows by this column and total `sum` per group. */
  groupBy?: string
  /** The numeric column to total. */
  sum?: string
  format: 'markdown' | 'html'
}

export interface Report {
  format: 'markdown' | 'html'
  report: string
  rows: number
  totals: Record<string, number>
}

export function report(data: Dataset): Report {
  const columns = [...new Set(data.rows.flatMap((r) => Object.keys(r)))]
  const totals: Record<string, number> = {}
  if (data.groupBy && data.sum) {
    for (const row of data.rows) {
      const group = String(row[data.groupBy] ?? '(none)')
      const value = Number(row[data.sum])
      totals[group] = (totals[group] ?? 0) + (Number.isFinite(value) ? value : 0)
    }
  }
  const render = data.format === 'html' ? html : markdown
  return {
    format: data.format,
    report: render(data.title, columns, data.rows, totals, data.groupBy, data.sum),
    rows: data.rows.length,
    totals,
  }
}

function cell(value: unknown): string {
  return value === undefined || value === null ? '' : String(value)
}

function markdown(
  title: string,
  columns: string[],
  rows: Record<string, unknown>[],
  totals: Record<string, number>,
  groupBy?: string,
  sum?: string,
): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ')
  const lines = [`# ${esc(title)}`, '']
  if (columns.length > 0) {
    lines.push(`| ${columns.map(esc).join(' | ')} |`)
    lines.push(`| ${columns.map(() => '---').join(' | ')} |`)
    for (const row of rows) {
      lines.push(`| ${columns.map((c) => esc(cell(row[c]))).join(' | ')} |`)
    }
  } else {
    lines.push('_No rows._')
  }
  const groups = Object.keys(totals).sort()
  if (groups.length > 0 && groupBy && sum) {
    lines.push('', `## ${esc(sum)} by ${esc(groupBy)}`, '')
    for (const g of groups) {
      lines.push(`- ${esc(g)}: ${totals[g]}`)
    }
  }
  return `${lines.join('\n')}\n`
}

function html(
  title: string,
  columns: string[],
  rows: Record<string, unknown>[],
  totals: Record<string, number>,
  groupBy?: string,
  sum?: string,
): string {
  const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
  const head = columns.map((c) => `<th>${esc(c)}</th>`).join('')
  const body = rows
    .map((r) => `<tr>${columns.map((c) => `<td>${esc(cell(r[c]))}</td>`).join('')}</tr>`)
    .join('')
  const groups = Object.keys(totals).sort()
  const summary =
    groups.length > 0 && groupBy && sum
      ? `<h2>${esc(sum)} by ${esc(groupBy)}</h2><ul>${groups
          .map((g) => `<li>${esc(g)}: ${totals[g]}</li>`)
          .join('')}</ul>`
      : ''
  return `<h1>${esc(title)}</h1><table><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>${summary}`
}
