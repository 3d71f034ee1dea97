/**
 * journald MESSAGE_ID= for each event offloadd logs, so operators can filter
 * (`journalctl MESSAGE_ID=...`) and `journalctl -x` can show the catalog entry
 * (systemd/offloadd.catalog). These ids are a public interface: never change one.
 */
export const MessageId = {
  /** The daemon started and finished its initial reconcile. */
  started: '5326d170a36845dbaa1b7ffdd3dbe146',
  /** The daemon is stopping. */
  stopping: '8db8e39c7f1245949d938be0e9f35c5b',
  /**
   * An `initial` record: an interface's first check found a feature out of policy (and set it,
   * in enforce mode). One id per record event, so `journalctl MESSAGE_ID=` and the ledger agree.
   */
  initial: 'f0a343a8674b4c31bae1e8a5dd34c1e1',
  /** A `drift` record: a feature that had been as wanted no longer is (whatever was done about it). */
  drift: 'a5d2004202124136b153c1aa612d7bf6',
  /** A wanted feature state cannot be enforced on this device (fixed, unsupported, kernel refuses). */
  unenforceable: 'be5abd5aca884f71a8858c37a627d051',
  /** Something keeps flipping a feature back; corrections are backing off. */
  flapping: '76bf00b8feaa404e9c7dcd0a7d74a5e4',
  /** Link events were lost (netlink receive-buffer overflow); everything was re-read. */
  resync: '177407813bc048b08d394558bcceb631',
  /** A policy was loaded (start-up or reload). */
  policyLoaded: '3926d3c14c58436caf41fc4d4f41baa7',
  /** A new policy was rejected; the running one stays in force. */
  policyRejected: 'e420f2b844494a23993fde4743b2cf4f',
  /** Reading an interface or its features failed for a reason other than the interface vanishing. */
  enforceFailed: '22b10973fa124a48bbf81709cca71b12',
  /** The ledger cannot be written (full disk, read-only, not a regular file); enforcement goes on. */
  ledgerUnwritable: '20982b1f8eb64a609ce6c6c9bba34206',
  /** The ledger can be written again; records held in memory meanwhile were written. */
  ledgerWritable: '41105bf467774c859d6212b1f82087f4',
  /** An API caller was refused (not authorised). */
  accessDenied: 'b2720a4cd2184ae8ab418e4a1c9776a9',
} as const;

/** The name of a journal message (a MESSAGE_ID), as the code refers to it. */
export type JournalMessage = keyof typeof MessageId;
