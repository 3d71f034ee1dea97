/**
 * Waiting for a positive signal instead of sleeping: the one polling loop every test uses.
 * Imports nothing else, so kernel-free unit tests can use it.
 */

/** Polls until `condition` holds; the timeout is a safety net, not a measurement. */
export async function waitFor<T>(condition: () => T | null | undefined | false, what: string, timeoutMs = 15000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let value: T | null | undefined | false;
    let lastError: unknown;
    try {
      value = condition();
    } catch (error) {
      value = null;
      lastError = error;
    }
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
