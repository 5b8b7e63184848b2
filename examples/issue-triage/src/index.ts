/**
 * issue-triage: reads a GitHub-style issue from its input, fetches the repository's labels
 * from the GitHub API with the `github_token` secret, and suggests the labels the issue talks
 * about. The token is never in the app's hands: the header says `{{secret:github_token}}` and
 * Warden substitutes it at egress, only toward api.github.com, as the grant binds it.
 *
 * Input: { "repo": "owner/name", "issue": { "title": "…", "body": "…" }, "api"?: "https://…" }
 * (`api` defaults to https://api.github.com; the grant decides whether another is reachable).
 */
import { HostError, http, log, secrets } from 'warden:app'
import { suggestLabels, type Label } from './suggest.ts'

interface Input {
  repo?: unknown
  issue?: { title?: unknown; body?: unknown }
  api?: unknown
}

const REPO = /^[A-Za-z0-9_.-]{1,100}\/[A-Za-z0-9_.-]{1,100}$/

export function run(input: Input): { suggested: string[]; considered: number } {
  const repo = typeof input.repo === 'string' ? input.repo : ''
  if (!REPO.test(repo) || repo.includes('..')) {
    throw new Error('repo must be "owner/name"')
  }
  const title = typeof input.issue?.title === 'string' ? input.issue.title : ''
  const body = typeof input.issue?.body === 'string' ? input.issue.body : ''
  const api =
    typeof input.api === 'string' ? input.api.replace(/\/+$/, '') : 'https://api.github.com'

  let labels: Label[]
  try {
    const res = http.fetch(`${api}/repos/${repo}/labels?per_page=100`, {
      headers: {
        accept: 'application/vnd.github+json',
        authorization: `Bearer ${secrets.placeholder('github_token')}`,
        'user-agent': 'warden-issue-triage',
      },
    })
    if (!res.ok) {
      throw new Error(`GitHub answered ${res.status}`)
    }
    labels = res.json<Label[]>()
  } catch (error) {
    if (error instanceof HostError) {
      // `denied`: the grant does not allow this API; `upstream`: it failed.
      throw new Error(`cannot fetch labels: ${error.kind}: ${error.reason}`)
    }
    throw error
  }
  const suggested = suggestLabels(`${title}\n${body}`, labels)
  log.info(`${repo}: ${suggested.length} of ${labels.length} labels suggested`)
  return { suggested, considered: labels.length }
}
