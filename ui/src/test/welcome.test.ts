import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, render } from '@testing-library/svelte';
import Welcome from '../components/Welcome.svelte';
import { engine } from '../lib/engine.svelte';
import type { Settings } from '../api/types';

afterEach(() => cleanup());

const settings = { dataDir: '/home/me/.local/share/app.troupe', effectiveModelPath: '/m/qwen.gguf' } as Settings;
const show = () => render(Welcome, { settings, ondone: () => {}, onmodels: () => {} });

describe('the welcome', () => {
  it('names the model as loaded only once it is', () => {
    engine.set({ state: 'loading', model: 'qwen.gguf' });
    expect(show().getByText(/Loading now:/).textContent).toContain('qwen.gguf');
    cleanup();
    engine.set({
      state: 'ready', model: 'qwen.gguf', device: 'CPU', contextLength: 32768, architecture: 'qwen2',
      quantization: 'Q4_K_M', parameters: 494_000_000, layers: null,
    });
    const { getByText, getByTestId } = show();
    expect(getByText(/Loaded now:/).textContent).toContain('qwen.gguf');
    expect(getByTestId('welcome-models').textContent).toBe('Choose a better model');
  });

  // The file missing (or broken) is said as it is, with the way to get a model, not "Loaded now".
  it('says no model is loaded when it could not be opened', () => {
    engine.set({ state: 'failed', error: { code: 'model_unavailable', message: 'The model file /m/qwen.gguf does not exist' } });
    const { container, getByTestId } = show();
    expect(getByTestId('welcome-no-model').textContent).toContain('could not open qwen.gguf');
    expect(container.textContent).not.toContain('Loaded now');
    expect(getByTestId('welcome-models').textContent).toBe('Choose a model');
  });
});
