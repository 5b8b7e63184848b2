/**
 * Guest text on a terminal: a guest must not be able to rewrite what Warden prints.
 */
const TERMINAL_UNSAFE =
  /[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g
const TERMINAL_UNSAFE_OR_NEWLINE =
  /[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g

/**
 * Guest text with every control, line-moving and bidi character written as `\uXXXX`, so it
 * cannot forge a line of Warden's own output. Tabs stay; newlines stay only if `newlines`.
 */
export function terminalSafe(text: string, newlines: boolean): string {
  return text.replace(
    newlines ? TERMINAL_UNSAFE : TERMINAL_UNSAFE_OR_NEWLINE,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  )
}
