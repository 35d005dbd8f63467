import { call, on, stream } from './ipc';
import type { CatalogModel, DownloadEvent, EngineStatus, ModelFile, Preset, Sampling, SamplingLevel, Settings } from './types';

export const engineStatus = () => call<EngineStatus>('engine_status');
export const onEngineStatus = (handler: (s: EngineStatus) => void) => on<EngineStatus>('engine://status', handler);
export const reloadModel = () => call<void>('reload_model');
/** Stops loading the model; false when nothing was loading. */
export const stopLoading = () => call<boolean>('stop_loading');
export const getSettings = () => call<Settings>('get_settings');
export const saveSettings = (settings: Settings) => call<Settings>('save_settings', { settings });
export const samplingPresets = () => call<Preset[]>('sampling_presets');

/** Where a Sampling lives: a Character's default, or one Session's override. */
export type SamplingScope = { characterId: string } | { sessionId: number };
const scopeArgs = (s: SamplingScope) =>
  'characterId' in s ? { characterId: s.characterId, sessionId: null } : { characterId: null, sessionId: s.sessionId };
export const getSampling = (scope: SamplingScope) => call<SamplingLevel>('get_sampling', scopeArgs(scope));
/** `null` clears it: the scope inherits again. */
export const setSampling = (scope: SamplingScope, sampling: Sampling | null) =>
  call<SamplingLevel>('set_sampling', { ...scopeArgs(scope), sampling });

export const listModels = () => call<ModelFile[]>('list_models');
export const addModel = (path: string) => call<ModelFile>('add_model', { path });
export const forgetModel = (path: string) => call<void>('forget_model', { path });
/** Switches to a model; it loads in the background (the status bar follows). */
export const useModel = (path: string) => call<void>('use_model', { path });
export const downloadModel = (repo: string, file: string, onProgress: (e: DownloadEvent) => void) =>
  stream<DownloadEvent, ModelFile>('download_model', { repo, file }, onProgress);
export const cancelDownload = () => call<void>('cancel_download');

/** Suggested companion models, each with whether it suits this machine. */
export const modelCatalog = () => call<CatalogModel[]>('model_catalog');
/** Downloads a catalog model (progress, resume, checksum) and switches to it. */
export const installCatalogModel = (id: string, onProgress: (e: DownloadEvent) => void) =>
  stream<DownloadEvent, ModelFile>('install_catalog_model', { id }, onProgress);
/** Opens a web or mail link in the system browser (after the person confirmed it). */
export const openLink = (url: string) => call<void>('open_link', { url });
