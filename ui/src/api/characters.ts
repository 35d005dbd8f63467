import { call } from './ipc';
import type { CharacterDetail, CharacterSummary } from './types';

export const listCharacters = () => call<CharacterSummary[]>('list_characters');
export const getCharacter = (id: string) => call<CharacterDetail>('get_character', { id });
