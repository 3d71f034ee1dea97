/**
 * Who caused each managed interface's last drift or flapping record in this run, as `offloadctl
 * show` and `explain` print it: a sink of the daemon's stream like every other output. A deleted
 * interface's entry goes with it (its ifindex may come back as another device).
 */
import type { RecordActor } from '../attribution/actor';
import type { Sink } from './stream';

export class LastActors {
  private readonly byIfindex = new Map<number, RecordActor>();

  get(ifindex: number): RecordActor | undefined {
    return this.byIfindex.get(ifindex);
  }

  set(ifindex: number, actor: RecordActor): void {
    this.byIfindex.set(ifindex, actor);
  }

  forget(ifindex: number): void {
    this.byIfindex.delete(ifindex);
  }
}

export function lastActorsSink(lastActors: LastActors): Sink {
  return {
    checked: (report) => {
      for (const record of report.records) if (record.actor) lastActors.set(report.facts.ifindex, record.actor);
    },
    released: (release) => {
      if (release.why === 'deleted') lastActors.forget(release.ifindex);
    },
  };
}
