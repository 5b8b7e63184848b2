/**
 * The WardenError a promise rejects with; fails the test if it resolves or rejects with
 * anything else. Tests then assert on `.code`, never on the message.
 */
import { expect } from 'vitest'
import { WardenError } from '../../runtime/errors.js'

export async function refusal(promise: Promise<unknown>): Promise<WardenError> {
  try {
    await promise
  } catch (error) {
    expect(error).toBeInstanceOf(WardenError)
    return error as WardenError
  }
  throw new Error('expected a refusal')
}
