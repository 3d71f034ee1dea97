import type { PciId } from './types';

/** "vvvv:dddd", as `lspci -n` prints it and as ledger records and journal fields carry it. */
export function vendorDevice(id: PciId): string {
  return `${id.vendor}:${id.device}`;
}
