/**
 * Waiting for a positive signal instead of sleeping: the one polling loop every test uses.
 * Imports nothing else, so kernel-free unit tests can use it.
 */

/** Often enough to be prompt, rarely enough to leave the machine to the code under test. */
const POLL_INTERVAL_MS = 20;

/** Polls until `condition` holds; the timeout is a safety net, not a measurement. */
export function waitFor<T>(condition: () => T | null | undefined | false, what: string, timeoutMs = 15000): Promise<T> {
  return waitForAsync(() => Promise.resolve(condition()), what, timeoutMs);
}

/** waitFor for a condition that has to ask something asynchronous (a command, a socket). */
export async function waitForAsync<T>(
  condition: () => Promise<T | null | undefined | false>,
  what: string,
  timeoutMs = 15000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let value: T | null | undefined | false;
    let lastError: unknown;
    try {
      value = await condition();
    } catch (error) {
      value = null;
      lastError = error;
    }
    if (value) return value;
    if (Date.now() > deadline)
      throw new Error(
        `timed out waiting for ${what}${lastError ? `: ${lastError instanceof Error ? lastError.message : JSON.stringify(lastError)}` : ''}`,
      );
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
  }
}
