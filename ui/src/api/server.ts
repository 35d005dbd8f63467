// Settings → Local API: Troupe's characters served to other programs (an OpenAI-compatible
// API in this process). Each call applies at once and resolves to the API as it now is.
import { call } from './ipc';
import type { LocalApi, LocalApiChange } from './types';

export const localApi = () => call<LocalApi>('local_api');
/** Turns it on or off with these choices (a key is made the first time it is on). */
export const setLocalApi = (change: LocalApiChange) => call<LocalApi>('set_local_api', { change });
/** A new key; the old one stops working at once. */
export const newLocalApiKey = () => call<LocalApi>('new_local_api_key');
