/**
 * The per-interface metrics (offloadd_interface_*: three lines per managed interface, ~300 bytes,
 * most of an exposition), written as UTF-8 straight into one Buffer outside the JavaScript heap:
 * no 300 kB string is ever built, so the heap does not grow for it.
 *
 * Each build writes a fresh Buffer and never touches an older one, so a block an exporter is
 * still writing out stays as it was; the one replaced is freed by the garbage collector like any
 * other Buffer (what that costs: docs/METRICS.md, Rendering).
 */
import { vendorDevice } from '../facts/pci';
import type { InterfaceStatus } from '../reconcile/managed-interfaces';
import { escapeLabelValue, header } from './exposition';

const COMPLIANT_HELP = '1 while this managed interface is as the policy wants.';
const DRIFTS_HELP = 'Drifts of this interface since it became managed.';
const UNENFORCEABLE_HELP = 'Wanted features this device cannot change (as of the last check).';
/** A value and its line feed, at most: a drift count of up to 11 digits. */
const VALUE_BYTES = 12;
/** Bytes of an interface's three lines besides their labels: the names and the values. */
const INTERFACE_LINES_OVERHEAD =
  'offloadd_interface_compliant'.length +
  'offloadd_interface_drifts_total'.length +
  'offloadd_interface_unenforceable_features'.length +
  3 * VALUE_BYTES;
/** The block's three HELP and TYPE headers (a few hundred bytes), rounded up. */
const HEADERS_BYTES = 1024;

/** The offloadd_interface_* lines of these statuses, as UTF-8. */
export function renderInterfaceLines(statuses: readonly InterfaceStatus[]): Buffer {
  const labelTexts = statuses.map(
    (status) =>
      `{interface="${escapeLabelValue(status.name)}",driver="${escapeLabelValue(status.facts.driver ?? '')}",` +
      `pci="${status.facts.pci ? escapeLabelValue(vendorDevice(status.facts.pci)) : ''}",rule="${escapeLabelValue(status.rule)}"} `,
  );
  // Sized up front, to the byte but for the values' digits: one allocation that never grows, so
  // the block keeps next to no spare capacity for as long as it lives.
  let expected = HEADERS_BYTES;
  for (const labelText of labelTexts) expected += INTERFACE_LINES_OVERHEAD + 3 * Buffer.byteLength(labelText);
  const out = new ByteWriter(expected);
  out.write(header('offloadd_interface_compliant', 'gauge', COMPLIANT_HELP));
  statuses.forEach((status, i) => {
    out.write('offloadd_interface_compliant');
    out.write(labelTexts[i] as string);
    out.write(status.compliant ? '1\n' : '0\n');
  });
  out.write(header('offloadd_interface_drifts_total', 'counter', DRIFTS_HELP));
  statuses.forEach((status, i) => {
    out.write('offloadd_interface_drifts_total');
    out.write(labelTexts[i] as string);
    out.write(`${status.driftCount}\n`);
  });
  out.write(header('offloadd_interface_unenforceable_features', 'gauge', UNENFORCEABLE_HELP));
  statuses.forEach((status, i) => {
    let unenforceable = 0;
    for (const outcome of status.features) if (outcome.action === 'unenforceable') unenforceable++;
    out.write('offloadd_interface_unenforceable_features');
    out.write(labelTexts[i] as string);
    out.write(`${unenforceable}\n`);
  });
  return out.bytes();
}

/** UTF-8 appended to one growing Buffer (outside the JavaScript heap). */
class ByteWriter {
  private buffer: Buffer;
  private length = 0;

  constructor(expectedBytes: number) {
    // Unpooled: the block is its own allocation, freed whole with it.
    this.buffer = Buffer.allocUnsafeSlow(expectedBytes);
  }

  write(text: string): void {
    // The exact size, not the worst case (3 bytes per UTF-16 unit): near the end of a buffer sized
    // to the byte, the worst case of a long label would double a buffer that has room enough.
    const bytes = Buffer.byteLength(text, 'utf8');
    if (this.length + bytes > this.buffer.length) {
      const grown = Buffer.allocUnsafeSlow(Math.max(this.buffer.length * 2, this.length + bytes));
      this.buffer.copy(grown, 0, 0, this.length);
      this.buffer = grown;
    }
    this.length += this.buffer.write(text, this.length, 'utf8');
  }

  /** What was written (a view: the spare capacity, a few bytes when sized as above, stays with it). */
  bytes(): Buffer {
    return this.buffer.subarray(0, this.length);
  }
}
