import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, waitFor } from '@testing-library/svelte';
import type { CatalogModel, ModelFile, Preset, Sampling } from '../api/types';

const api = vi.hoisted(() => ({
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

import ModelsPanel from '../components/ModelsPanel.svelte';
import SamplingFields from '../components/SamplingFields.svelte';

afterEach(() => {
  cleanup();
  vi.clearAllMocks();
});

const entry = (id: string, fit: string, extra: Partial<CatalogModel> = {}): CatalogModel => ({
  id, name: id.toUpperCase(), repo: 'owner/repo', file: `${id}.gguf`, parameters: 1_540_000_000,
  sizeBytes: 1_120_000_000, contextLength: 32768, needBytes: 1_800_000_000, licence: 'Apache-2.0',
  goodAt: 'Follows a profile well.', languages: 'English', fit, fitReason: 'needs about 1.8 GB of 8.0 GB memory',
  installed: null, inUse: false, ...extra,
});

describe('ModelCatalog', () => {
  it('shows each model with its licence and fit, downloads one with progress and switches to it', async () => {
    api.listModels.mockResolvedValue([]);
    api.modelCatalog.mockResolvedValue([
      entry('small', 'fits', { installed: '/m/small.gguf', inUse: true }),
      entry('mid', 'fits'),
      entry('huge', 'wont_fit', { fitReason: 'needs about 9.0 GB but this machine has 8.0 GB of memory' }),
    ]);
    let report: ((e: { kind: 'progress'; done: number; total: number; resumedFrom: number }) => void) | null = null;
    let finish: (() => void) | null = null;
    api.installCatalogModel.mockImplementation((_id: string, on: typeof report) => {
      report = on;
      return new Promise<void>((r) => (finish = r));
    });
    const onswitched = vi.fn();
    const { findAllByTestId, findByTestId } = render(ModelsPanel, { onswitched });
    const rows = await findAllByTestId('catalog-model');
    expect(rows.map((r) => r.dataset.id)).toEqual(['small', 'mid', 'huge']);
    expect(rows[0].textContent).toContain('In use');
    expect(rows[0].querySelector('[data-testid=catalog-get]')).toBeNull();
    expect(rows[1].textContent).toContain('Apache-2.0');
    expect(rows[1].textContent).toContain('1.5 B parameters');
    expect(rows[2].textContent).toContain("Won't fit");
    expect((rows[2].querySelector('[data-testid=catalog-get]') as HTMLButtonElement).disabled).toBe(true);
    await fireEvent.click(rows[1].querySelector('[data-testid=catalog-get]') as HTMLElement);
    expect(api.installCatalogModel).toHaveBeenCalledWith('mid', expect.any(Function));
    report!({ kind: 'progress', done: 560_000_000, total: 1_120_000_000, resumedFrom: 0 });
    expect((await findByTestId('catalog-progress')).textContent).toContain('560 MB of 1.1 GB');
    finish!();
    expect((await findByTestId('catalog-note')).textContent).toContain('Switched to MID');
    expect(onswitched).toHaveBeenCalled();
  });
});

const model = (fileName: string, fit: string, extra: Partial<ModelFile> = {}): ModelFile => ({
  path: `/m/${fileName}`, fileName, sizeBytes: 98_000_000, architecture: 'llama', parameters: 134_515_008,
  quantization: 'Q4_1', contextLength: 8192, fit, fitReason: 'needs about 0.6 GB of 24.0 GB', inUse: false,
  added: false, ...extra,
});

describe('ModelsPanel', () => {
  it('shows what the header says and the fit, and switches models', async () => {
    api.modelCatalog.mockResolvedValue([]);
    api.listModels.mockResolvedValue([
      model('smol.gguf', 'fits', { inUse: true }),
      model('big.gguf', 'wont_fit', { fitReason: 'needs about 40 GB but this machine has 24 GB', added: true }),
    ]);
    api.useModel.mockResolvedValue(undefined);
    const { container, findAllByTestId } = render(ModelsPanel, {});
    const rows = await findAllByTestId('model');
    expect(rows[0].textContent).toContain('135 M parameters');
    expect(rows[0].textContent).toContain('In use');
    expect(rows[1].querySelector('[data-testid=model-fit]')?.textContent).toContain("Won't fit");
    expect(rows[1].textContent).toContain('40 GB');
    const use = rows[1].querySelector('[data-testid=use-model]') as HTMLElement;
    await fireEvent.click(use);
    expect(api.useModel).toHaveBeenCalledWith('/m/big.gguf');
    expect(container.querySelector('[data-testid=use-model]')).toBeTruthy();
  });

  it('says why a file cannot be added', async () => {
    api.modelCatalog.mockResolvedValue([]);
    api.listModels.mockResolvedValue([]);
    api.addModel.mockRejectedValue({ code: 'model_unavailable', message: '/x.gguf is not a usable GGUF model' });
    const { getByTestId, findByTestId } = render(ModelsPanel, {});
    await fireEvent.input(getByTestId('add-model-path'), { target: { value: '/x.gguf' } });
    await fireEvent.click(getByTestId('add-model'));
    expect((await findByTestId('models-error')).textContent).toContain('not a usable GGUF');
  });
});

const balanced: Sampling = { temperature: 0.8, topP: 0.95, topK: 0, minP: 0.05, repetitionPenalty: 1.1, repetitionWindow: 0, dryMultiplier: 0.8, maxTokens: 200, seed: null };
const presets: Preset[] = [
  { name: 'balanced', sampling: balanced },
  { name: 'deterministic', sampling: { ...balanced, temperature: 0, topP: 1, minP: 0, seed: 0 } },
];

describe('SamplingFields', () => {
  it('names the preset the values match, applies a preset, and reads the seed box', async () => {
    let value = { ...balanced };
    const { getByTestId } = render(SamplingFields, {
      props: {
        get value() { return value; },
        set value(v: Sampling) { value = v; },
        presets,
      },
    });
    const select = getByTestId('sampling-preset') as HTMLSelectElement;
    expect(select.value).toBe('balanced');
    await fireEvent.change(select, { target: { value: 'deterministic' } });
    await waitFor(() => expect(value.temperature).toBe(0));
    expect(value.seed).toBe(0);
    await fireEvent.input(getByTestId('sampling-seed'), { target: { value: '' } });
    expect(value.seed).toBeNull();
    await fireEvent.input(getByTestId('sampling-seed'), { target: { value: '42' } });
    expect(value.seed).toBe(42);
  });
});
