/** Schemas several routes share: errors, ids, pagination. */
import { z } from '@hono/zod-openapi'

/** Every error answer. */
export const errorSchema = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: 'forbidden' }),
      message: z.string(),
    }),
  })
  .openapi('Error')

/** The error answers every authenticated route can give. */
export function errorResponses(...statuses: number[]) {
  const out: Record<
    number,
    { description: string; content: { 'application/json': { schema: typeof errorSchema } } }
  > = {}
  for (const status of [400, 401, 403, ...statuses]) {
    out[status] = {
      description: 'an error with a stable code (docs/errors.md)',
      content: { 'application/json': { schema: errorSchema } },
    }
  }
  return out
}

/** A JSON response of `schema`. */
export function json<S extends z.ZodType>(schema: S, description: string) {
  return { description, content: { 'application/json': { schema } } }
}

/** A JSON request body of `schema`, required. */
export function jsonBody<S extends z.ZodType>(schema: S) {
  return { body: { required: true, content: { 'application/json': { schema } } } }
}

/** `limit` and `cursor` of a list. */
export const pageQuery = {
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  cursor: z.string().max(200).optional(),
}
