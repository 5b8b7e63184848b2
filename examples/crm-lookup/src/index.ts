/**
 * crm-lookup: an HTML page and a JSON endpoint over the `crm` collection. Its grant covers the
 * keys under `contacts` only, and without `pii: true` the fields the collection marks as
 * personal data (email, phone) come back as "[pii]": the app never holds them. A key outside
 * the prefix (`notes/…`) is denied by the host, and the app answers 403.
 *
 * GET /                      the contacts as an HTML table
 * GET /api/contacts          the contacts as JSON
 * GET /api/contacts/<id>     one contact, or 404
 * GET /api/notes/<id>        outside the grant: 403
 */
import { data, HostError, html, json, log, type AppRequest, type AppResponse } from 'warden:app'

interface Contact {
  name?: string
  company?: string
  email?: string
  phone?: string
}

const ID = /^[a-z0-9-]{1,64}$/

export function handle(req: AppRequest): AppResponse {
  if (req.method !== 'GET') {
    return json({ error: 'method not allowed' }, { status: 405, headers: { allow: 'GET' } })
  }
  try {
    if (req.path === '/' || req.path === '') {
      return html(page(listContacts()))
    }
    if (req.path === '/api/contacts') {
      return json(listContacts())
    }
    const one = /^\/api\/(contacts|notes)\/([^/]+)$/.exec(req.path)
    if (one) {
      const [, kind, id] = one
      if (!ID.test(id!)) {
        return json({ error: 'not an id' }, { status: 400 })
      }
      const doc = data.get<Contact>('crm', `${kind}/${id}`)
      return doc === undefined
        ? json({ error: 'not found' }, { status: 404 })
        : json({ id, ...doc })
    }
    return json({ error: 'not found' }, { status: 404 })
  } catch (error) {
    if (error instanceof HostError && error.kind === 'denied') {
      log.warn(`denied: ${error.reason}`)
      return json({ error: 'forbidden' }, { status: 403 })
    }
    throw error
  }
}

function listContacts(): (Contact & { id: string })[] {
  const out: (Contact & { id: string })[] = []
  let cursor: string | undefined
  do {
    const page = data.list<Contact>('crm', 'contacts', { limit: 50, ...(cursor ? { cursor } : {}) })
    for (const entry of page.entries) {
      out.push({ id: entry.key.slice('contacts/'.length), ...entry.value })
    }
    cursor = page.nextCursor
  } while (cursor && out.length < 500)
  return out
}

function escapeHtml(text: unknown): string {
  return String(text ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

function page(contacts: (Contact & { id: string })[]): string {
  const rows = contacts
    .map(
      (c) =>
        `<tr><td><a href="api/contacts/${escapeHtml(c.id)}">${escapeHtml(c.name)}</a></td><td>${escapeHtml(c.company)}</td><td>${escapeHtml(c.email)}</td><td>${escapeHtml(c.phone)}</td></tr>`,
    )
    .join('')
  return `<!doctype html><title>Contacts</title><h1>Contacts</h1><table><tr><th>Name</th><th>Company</th><th>Email</th><th>Phone</th></tr>${rows}</table>`
}
