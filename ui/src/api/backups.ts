// Settings → Backups: snapshots of the whole library, restore, export and import everything.
import { base64Of } from './characters';
import { call } from './ipc';
import type { Backup, Counts, ImportAllResult } from './types';

/** The snapshots, newest first, and what the library holds now. */
export const listBackups = () => call<[Backup[], Counts]>('list_backups');
export const backUpNow = () => call<Backup>('back_up_now');
/** Replaces the library with a snapshot; resolves to the snapshot of the library as it was. */
export const restoreBackup = (id: string) => call<string>('restore_backup', { id });
/** Writes everything to a zip in the Downloads folder; resolves to its path. */
export const exportAll = () => call<string>('export_all');
/** Merges an export into the library: what exists stays, what is new is added. */
export async function importAll(file: File): Promise<ImportAllResult> {
  return call<ImportAllResult>('import_all', { file: file.name, data: await base64Of(file) });
}
