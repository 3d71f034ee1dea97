/**
 * Users and groups from /etc/passwd and /etc/group (Node has no getgrnam). Used to chown the
 * socket to --socket-group and to decide whether a caller belongs to --admin-group.
 */
import * as fs from 'node:fs';
import { OffloaddError } from '../errors';

interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

function readGroups(): GroupEntry[] {
  const groups: GroupEntry[] = [];
  for (const line of safeRead('/etc/group').split('\n')) {
    const [name, , gid, members] = line.split(':');
    if (!name || gid === undefined || !/^\d+$/.test(gid)) continue;
    groups.push({ name, gid: Number(gid), members: (members ?? '').split(',').filter(Boolean) });
  }
  return groups;
}

/** A missing file lists nobody; an unreadable one is an error, not an empty list. */
function safeRead(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return '';
    throw new OffloaddError('ERR_IDENTITY', `cannot read ${file}: ${code ?? (error as Error).message}`, {
      hint: `make ${file} readable by the daemon`,
      cause: error,
    });
  }
}

function userName(uid: number): string | null {
  for (const line of safeRead('/etc/passwd').split('\n')) {
    const [name, , id] = line.split(':');
    if (name && id === String(uid)) return name;
  }
  return null;
}

/** A group name or numeric gid → gid. */
export function resolveGroup(nameOrGid: string): number {
  if (/^\d+$/.test(nameOrGid)) return Number(nameOrGid);
  const group = readGroups().find((entry) => entry.name === nameOrGid);
  if (!group) {
    throw new OffloaddError('ERR_NO_SUCH_GROUP', `no group named "${nameOrGid}"`, {
      hint: 'create it (groupadd) or name an existing group',
    });
  }
  return group.gid;
}

/** Primary group or a listed member of the group (as getgrouplist would find). Throws OffloaddError. */
export function isMemberOf(uid: number, primaryGid: number, gid: number): boolean {
  if (primaryGid === gid) return true;
  const name = userName(uid);
  const group = readGroups().find((entry) => entry.gid === gid);
  return name !== null && group !== undefined && group.members.includes(name);
}
