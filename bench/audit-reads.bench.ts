/**
 * Question: what do `GET /v1/invocations/:id` and `GET /v1/audit/verify` cost the audit log
 * since the third outside attack (F2, F3)? On a signed log of `WARDEN_BENCH_RECORDS` (3,000,
 * about 0.8 MB) records, in one process:
 *
 * - lookup: `read({ invocationId })` of an unknown id and of a known one (4 records) through
 *   the index, against the old path, a scan of the file (`readAuditFile`);
 * - verify: `verify()` with nothing appended, and after appending one record (append included),
 *   against a full check (`verifyAuditFile` with the key), and 20 concurrent `verify()` after
 *   one append against 20 concurrent full checks.
 *
 * @example
 * npx tsx bench/index.ts audit-reads
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openAuditLog, readAuditFile, readAuditVerificationKey } from '../runtime/audit/index.js'
import { verifyAuditFile } from '../runtime/audit/index.js'
import type { AuditEntry } from '../runtime/audit/index.js'
import { load1, medians } from './support.js'
import type { Row } from './support.js'

const QUESTION = 'audit reads per request (F2, F3)'

function entry(i: number): AuditEntry {
  return {
    kind: 'host-call',
    invocationId: `inv-${Math.floor(i / 4)}`,
    appId: 'hello',
    actor: 'app:hello',
    capability: 'warden:platform/http',
    op: 'fetch',
    target: `https://api.example.com/items/${i}?q=${'x'.repeat(40)}`,
    decision: 'allow',
    durationMs: 1.5,
    bytesOut: 120,
    bytesIn: 2048,
  }
}

export async function run(): Promise<Row[]> {
  const records = Number(process.env.WARDEN_BENCH_RECORDS ?? 3000)
  const dir = await mkdtemp(join(tmpdir(), 'warden-bench-audit-'))
  const file = join(dir, 'audit.jsonl')
  const signingKeyFile = join(dir, 'audit-signing.key')
  try {
    const first = await openAuditLog({ file, signingKeyFile })
    for (let i = 0; i < records; i += 100) {
      await Promise.all(
        Array.from({ length: Math.min(100, records - i) }, (_, j) => first.append(entry(i + j))),
      )
    }
    await first.close()
    const log = await openAuditLog({ file, signingKeyFile })
    const checkpointKey = await readAuditVerificationKey(signingKeyFile)
    await log.read({ invocationId: 'warm-up' })
    await log.verify()
    let n = records
    const m = await medians(
      {
        'lookup unknown id: scan (before)': () => readAuditFile(file, { invocationId: 'nope' }),
        'lookup unknown id: index': () => log.read({ invocationId: 'nope' }),
        'lookup known id: scan (before)': () => readAuditFile(file, { invocationId: 'inv-7' }),
        'lookup known id: index': () => log.read({ invocationId: 'inv-7' }),
        'verify: full (before)': () => verifyAuditFile(file, { checkpointKey }),
        'verify: nothing appended': () => log.verify(),
        'verify: 1 appended (append included)': async () => {
          await log.append(entry(n++))
          await log.verify()
        },
        '20 concurrent verifies: full (before)': () =>
          Promise.all(Array.from({ length: 20 }, () => verifyAuditFile(file, { checkpointKey }))),
        '20 concurrent verifies after 1 append': async () => {
          await log.append(entry(n++))
          await Promise.all(Array.from({ length: 20 }, () => log.verify()))
        },
      },
      { time: 1000, iterations: 20 },
    )
    await log.close()
    const note = `${records} records, load ${load1()}`
    const row = (name: string, baseline?: string): Row => ({
      question: QUESTION,
      name,
      medianUs: m[name]!,
      ...(baseline ? { baseline, ratio: m[name]! / m[baseline]! } : {}),
      note,
    })
    return [
      row('lookup unknown id: scan (before)'),
      row('lookup unknown id: index', 'lookup unknown id: scan (before)'),
      row('lookup known id: scan (before)'),
      row('lookup known id: index', 'lookup known id: scan (before)'),
      row('verify: full (before)'),
      row('verify: nothing appended', 'verify: full (before)'),
      row('verify: 1 appended (append included)', 'verify: full (before)'),
      row('20 concurrent verifies: full (before)'),
      row('20 concurrent verifies after 1 append', '20 concurrent verifies: full (before)'),
    ]
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
