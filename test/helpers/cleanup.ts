/**
 * What a test made and must remove even when it fails or the run is interrupted: each helper
 * registers its resources here, and whatever is still registered when the process exits is
 * destroyed synchronously (nothing asynchronous runs in an exit handler).
 */
export interface Destroyable {
  destroySync(): void;
}

const live = new Set<Destroyable>();
process.on('exit', () => {
  for (const resource of live) {
    try {
      resource.destroySync();
    } catch {
      // the next one must still be destroyed
    }
  }
});

/** Registers `resource` for destruction at exit; returns the function that unregisters it. */
export function destroyAtExit(resource: Destroyable): () => void {
  live.add(resource);
  return () => live.delete(resource);
}
