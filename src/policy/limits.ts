/**
 * Every limit a policy is held to, stated once; offloadd.policy(5) documents them under Limits
 * (a unit test holds the page to these numbers).
 *
 * Why so low: a policy is parsed on the daemon's one thread, so a reload (SIGHUP, `offloadctl
 * reload`, --watch-policy) holds every drift correction back until it is done. The YAML parser
 * alone costs 1.5 to 3 µs of CPU a byte, so a 1 MiB policy held corrections back for one to two
 * seconds (issue 20 #9); at these limits the largest policy loads in about a tenth of a second.
 * Real policies are a few kilobytes (the shipped default, mostly comments, is 4), and a match key
 * takes a list, so one rule covers many interfaces. Parsing in a worker thread instead would keep
 * the 1 MiB limit but make a reload asynchronous: its answer, its order against link events and
 * its failure all change, for policies nobody writes.
 */

/** The largest policy file, in bytes. */
export const MAX_POLICY_BYTES = 32 * 1024;

/** The most rules a policy may hold. */
export const MAX_POLICY_RULES = 500;

/**
 * The most patterns the match blocks of a policy may hold together, an alias counting as what
 * it stands for: otherwise a few bytes (`match: *anchor` in every rule) could make the loader
 * check the same long list once per rule.
 */
export const MAX_POLICY_PATTERNS = 2048;

/**
 * How much work proving "these patterns accept every value" may take over a whole policy, in
 * steps (one pattern position advanced by one character class; about half a microsecond each).
 * A targeted key is answered by a sample value it refuses, without a proof; a legitimately broad
 * one (`*`, `[!x]*` with `x*`) takes a few hundred steps. Patterns built to make the proof explode
 * get "too complex to prove", which needs `broad:` like every other blanket rule.
 */
export const MAX_BLANKET_PROOF_STEPS = 50_000;
