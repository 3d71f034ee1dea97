/** The drift ledger as tests read it back: the records of a state directory's active file. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { LedgerRecord } from '../../src/ledger/record';

export interface LedgerReadOptions {
  /**
   * Skip lines that are not JSON (a torn line a test wrote on purpose, or one a test does not
   * care about). Default: every non-empty line must parse, so a torn or glued line fails the test.
   */
  skipTorn?: boolean;
}

/** Every record in ledger text (a file's content, or `cat` of one inside a container). */
export function parseLedgerText(text: string, options: LedgerReadOptions = {}): LedgerRecord[] {
  const records: LedgerRecord[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    try {
      records.push(JSON.parse(line) as LedgerRecord);
    } catch (error) {
      if (!options.skipTorn) throw error;
    }
  }
  return records;
}

/** The records in `stateDir`'s active ledger file (ledger.jsonl), [] while there is none. */
export function activeLedgerRecords(stateDir: string, options: LedgerReadOptions = {}): LedgerRecord[] {
  const file = path.join(stateDir, 'ledger.jsonl');
  return fs.existsSync(file) ? parseLedgerText(fs.readFileSync(file, 'utf8'), options) : [];
}
