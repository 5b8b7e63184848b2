/**
 * Where the kill switch is shared between hosts. A single host keeps the disabled apps in
 * memory (the app registry persists them); a deployment keeps them in a store every host
 * follows (`redis/kill-switch.ts`), so that disabling an app on one host ends its runs on all.
 */

/** The shared set of disabled apps. */
export interface KillSwitchStore {
  /** The disabled app ids now. Rejects with `store_unavailable`. */
  list(): Promise<string[]>
  /** Disable or enable an app on every host. Rejects with `store_unavailable`. */
  set(appId: string, disabled: boolean): Promise<void>
  /**
   * Changes, from any host (this one included), as they are announced. Returns a function that
   * stops listening.
   */
  onChange(listener: (appId: string, disabled: boolean) => void): () => void
}
