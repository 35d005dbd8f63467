import { call, on } from './ipc';
import type { EngineStatus, Settings } from './types';

export const engineStatus = () => call<EngineStatus>('engine_status');
export const onEngineStatus = (handler: (s: EngineStatus) => void) => on<EngineStatus>('engine://status', handler);
export const reloadModel = () => call<void>('reload_model');
export const getSettings = () => call<Settings>('get_settings');
export const saveSettings = (settings: Settings) => call<Settings>('save_settings', { settings });
