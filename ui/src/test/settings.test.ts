import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render } from '@testing-library/svelte';
import type { Settings } from '../api/types';

const api = vi.hoisted(() => ({
  getSettings: vi.fn(),
  saveSettings: vi.fn(),
  reloadModel: vi.fn(),
  samplingPresets: vi.fn(),
  listModels: vi.fn(),
  addModel: vi.fn(),
  forgetModel: vi.fn(),
  useModel: vi.fn(),
  downloadModel: vi.fn(),
  cancelDownload: vi.fn(),
  modelCatalog: vi.fn(),
  installCatalogModel: vi.fn(),
}));
vi.mock('../api/engine', () => api);

import SettingsDialog from '../components/SettingsDialog.svelte';

afterEach(() => {
  cleanup();
  vi.clearAllMocks();
});

const settings = {
  modelPath: null,
  sampling: { temperature: 0.8, topP: 0.95, topK: 40, minP: 0.05, repeatPenalty: 1.1, maxTokens: 200, seed: null },
  engine: 'local',
  remote: { baseUrl: '', apiKey: null, apiKeySet: false, model: '', contextLength: 4096 },
  effectiveModelPath: '/m/qwen.gguf',
  theme: 'system',
  welcomed: true,
  language: 'en',
  dataDir: '/home/me/.local/share/app.troupe',
  promptCacheMb: 1024,
} as unknown as Settings;

async function saveWithPromptCache(typed: string) {
  api.getSettings.mockResolvedValue(settings);
  api.samplingPresets.mockResolvedValue([]);
  api.listModels.mockResolvedValue([]);
  api.modelCatalog.mockResolvedValue([]);
  api.saveSettings.mockImplementation(async (s: Settings) => s);
  const { findByTestId } = render(SettingsDialog, { onclose: () => {} });
  const field = (await findByTestId('prompt-cache')) as HTMLInputElement;
  expect(field.value).toBe('1024');
  await fireEvent.input(field, { target: { value: typed } });
  await fireEvent.click(await findByTestId('settings-save'));
  expect(api.saveSettings).toHaveBeenCalledTimes(1);
  return api.saveSettings.mock.calls[0][0] as Settings;
}

describe('Settings → Model → Prompt cache', () => {
  it('saves the budget typed, whole megabytes', async () => {
    expect((await saveWithPromptCache('300')).promptCacheMb).toBe(300);
  });

  it('0 turns the cache off; an emptied field means the default, not off', async () => {
    expect((await saveWithPromptCache('0')).promptCacheMb).toBe(0);
    cleanup();
    vi.clearAllMocks();
    expect((await saveWithPromptCache('')).promptCacheMb).toBe(1024);
  });
});
