import { call } from './ipc';
import type { CharacterDetail, CharacterSummary, ImportResult } from './types';

export const listCharacters = () => call<CharacterSummary[]>('list_characters');
export const getCharacter = (id: string) => call<CharacterDetail>('get_character', { id });

/** A file's bytes as base64 (the webview has no paths, so files travel as their content). */
async function base64Of(file: Blob): Promise<string> {
  const bytes = new Uint8Array(await file.arrayBuffer());
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/** Imports card files (PNG, JSON, CHARX) picked or dropped by the user; one result per file. */
export async function importCards(files: File[], lorebookFor?: string): Promise<ImportResult[]> {
  const payload: [string, string][] = [];
  for (const f of files) payload.push([f.name, await base64Of(f)]);
  return call<ImportResult[]>('import_cards', { files: payload, lorebookFor: lorebookFor ?? null });
}

export type CardFormat = 'png' | 'json' | 'charx';

/** Saves a Character's card into the Downloads folder; returns where. */
export const exportCard = (id: string, format: CardFormat) => call<string>('export_card', { id, format });
