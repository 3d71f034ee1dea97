/**
 * Every link the daemon knows, by ifindex (names are reused and a rename carries no old name),
 * and why a new message about a link is worth a check.
 */
import { findLinkByNameOrIndex, LinkEventReason, type LinkMessage } from '../events/link-message';
import type { Trigger } from '../ledger/record';

export class LinkTable {
  private readonly links = new Map<number, LinkMessage>();

  get(ifindex: number): LinkMessage | undefined {
    return this.links.get(ifindex);
  }

  ifindexes(): IterableIterator<number> {
    return this.links.keys();
  }

  /** Stores an event's link message and says why the link should be checked. */
  update(link: LinkMessage): Trigger {
    const previous = this.links.get(link.ifindex);
    this.links.set(link.ifindex, link);
    return classify(previous, link);
  }

  delete(ifindex: number): LinkMessage | undefined {
    const link = this.links.get(ifindex);
    this.links.delete(ifindex);
    return link;
  }

  /**
   * A full dump is the truth: returns the ifindexes that are gone (the caller forgets them) and
   * a trigger for each link present (`rename` when its name changed, else `trigger`).
   */
  replace(links: readonly LinkMessage[], trigger: Trigger): { gone: number[]; present: Array<[number, Trigger]> } {
    const present = new Set(links.map((link) => link.ifindex));
    const gone = [...this.links.keys()].filter((ifindex) => !present.has(ifindex));
    const checks: Array<[number, Trigger]> = [];
    for (const link of links) {
      const previous = this.links.get(link.ifindex);
      this.links.set(link.ifindex, link);
      checks.push([link.ifindex, previous && previous.name !== link.name ? 'rename' : trigger]);
    }
    return { gone, present: checks };
  }

  /** By name, or by ifindex written in decimal. */
  find(nameOrIndex: string): LinkMessage | null {
    return findLinkByNameOrIndex(this.links.values(), nameOrIndex);
  }
}

export function classify(previous: LinkMessage | undefined, link: LinkMessage): Trigger {
  if (!previous) return 'new';
  if (previous.name !== link.name) return 'rename';
  if (link.event === LinkEventReason.features) return 'features';
  if (!previous.up && link.up) return 'up';
  return 'change';
}
