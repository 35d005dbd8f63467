import { call } from './ipc';
import type {
  CharacterDetail,
  CharacterEdit,
  CharacterPreview,
  CharacterSummary,
  ImportResult,
  ProfileForm,
  Scenario,
} from './types';

export const listCharacters = () => call<CharacterSummary[]>('list_characters');
export const getCharacter = (id: string) => call<CharacterDetail>('get_character', { id });

/** A file's bytes as base64 (the webview has no paths, so files travel as their content). */
export async function base64Of(file: Blob): Promise<string> {
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

// ---- the editor ----------------------------------------------------------------------------

/** A new, empty Character for the editor (not stored until saved). */
export function blankCharacter(): CharacterEdit {
  return {
    id: null, name: '', category: 'daily_life', tagline: '', tags: [],
    attributes: { identity: '', interests: '', viewpoints: '', experiences: '', achievements: '', relationships: '', other: '' },
    behaviours: { linguisticStyle: '', emotionalExpression: '', interactionPatterns: '' },
    forms: { summary: '', paraphrase: '', selfIntro: '' }, uses: 'prose',
    greetings: { chitChat: '', interview: '', companionship: '' }, alternateGreetings: [], exampleDialogue: [],
    description: '', personality: '', setting: '', systemPrompt: '', postHistoryInstructions: '', creatorNotes: '',
    talkativeness: 0.5, avatarUrl: null,
  };
}

export const getCharacterEdit = (id: string) => call<CharacterEdit>('get_character_edit', { id });

/** The live preview: profile text, the opening prompt as the model reads it, its tokens, problems. */
export const previewCharacter = (edit: CharacterEdit, scenario: Scenario) =>
  call<CharacterPreview>('preview_character', { edit, scenario });

/** A picture the user chose, and the square framed in it (see AvatarCropper). */
export type AvatarPick = { file: File; x: number; y: number; scale: number };

/** Saves the editor's Character; `avatar` replaces its picture, `removeAvatar` drops it. */
export async function saveCharacter(
  edit: CharacterEdit,
  avatar: AvatarPick | null,
  removeAvatar = false,
): Promise<CharacterDetail> {
  const upload = avatar ? { data: await base64Of(avatar.file), x: avatar.x, y: avatar.y, scale: avatar.scale } : null;
  return call<CharacterDetail>('save_character', { edit, avatar: upload, removeAvatar });
}

/** Has the model write a summary, paraphrase or self-introduction from the editor's fields. */
export const writeProfileForm = (edit: CharacterEdit, form: ProfileForm) =>
  call<string>('write_profile_form', { edit, form });

/** Stops the model writing a form; the pending `writeProfileForm` fails with code `stopped`. */
export const stopProfileForm = () => call<void>('stop_profile_form');

// ---- the gallery ---------------------------------------------------------------------------

export const duplicateCharacter = (id: string) => call<CharacterSummary>('duplicate_character', { id });
export const setFavourite = (id: string, favourite: boolean) => call<void>('set_favourite', { id, favourite });
export const trashCharacter = (id: string) => call<void>('trash_character', { id });
export const restoreCharacter = (id: string) => call<void>('restore_character', { id });
export const listTrash = () => call<CharacterSummary[]>('list_trash');
export const emptyTrash = () => call<number>('empty_trash');
/** Ids of the Characters whose name or profile text contains `query`. */
export const searchCharacters = (query: string) => call<string[]>('search_characters', { query });
