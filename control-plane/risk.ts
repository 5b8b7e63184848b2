/**
 * The risk tier of an app, from what it declares it may use (its imports), and the reasons for
 * it in words an approver reads:
 *
 * - `low`: no platform capability, or `log` only (the safe WASI baseline is not a risk);
 * - `medium`: `http` (network, to allowlisted hosts) or `data` (reads of granted prefixes);
 * - `high`: `secrets` (brokered credentials), or `data` while any collection holds PII fields.
 *
 * `medium` and `high` apps need an admin's approval before tokens are granted or runs allowed;
 * `high` ones an admin other than their publisher.
 */

/** How much an app could do with every capability it declares. */
export type RiskTier = 'low' | 'medium' | 'high'

/** Tiers in order: a new version whose tier rises needs a new approval. */
export const RISK_TIERS: readonly RiskTier[] = ['low', 'medium', 'high']

/** The tier and why. */
export interface RiskAssessment {
  tier: RiskTier
  reasons: string[]
}

const REASONS: Readonly<Record<string, { tier: RiskTier; reason: string }>> = {
  'warden:platform/http': {
    tier: 'medium',
    reason: 'http: may call allowlisted hosts on the network',
  },
  'warden:platform/data': {
    tier: 'medium',
    reason: 'data: may read documents under granted prefixes',
  },
  'warden:platform/secrets': {
    tier: 'high',
    reason: 'secrets: may use brokered credentials (and see them if reveal is granted)',
  },
}

/**
 * Assess an app from its imports (unversioned or versioned interface names) and the data
 * collections that currently have PII fields.
 *
 * @example
 * assessRisk(['warden:platform/log'], []) // { tier: 'low', reasons: ['log only: …'] }
 * assessRisk(['warden:platform/data'], ['crm']).tier // 'high'
 */
export function assessRisk(
  imports: readonly string[],
  piiCollections: readonly string[],
): RiskAssessment {
  const names = new Set(imports.map((name) => name.replace(/@[^@]*$/, '')))
  let tier: RiskTier = 'low'
  const reasons: string[] = []
  const raise = (to: RiskTier, reason: string) => {
    if (RISK_TIERS.indexOf(to) > RISK_TIERS.indexOf(tier)) {
      tier = to
    }
    reasons.push(reason)
  }
  for (const [name, { tier: to, reason }] of Object.entries(REASONS)) {
    if (names.has(name)) {
      raise(to, reason)
    }
  }
  if (names.has('warden:platform/data') && piiCollections.length > 0) {
    const listed = [...piiCollections].sort().slice(0, 5).join(', ')
    raise('high', `data: collections with PII fields exist (${listed})`)
  }
  if (reasons.length === 0) {
    reasons.push(
      names.has('warden:platform/log')
        ? 'log only: no network, secrets or data'
        : 'no platform capability: computes on its input only',
    )
  }
  return { tier, reasons }
}
