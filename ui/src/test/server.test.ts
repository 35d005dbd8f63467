import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, waitFor } from '@testing-library/svelte';
import type { LocalApi } from '../api/types';

const api = vi.hoisted(() => ({ localApi: vi.fn(), setLocalApi: vi.fn(), newLocalApiKey: vi.fn() }));
vi.mock('../api/server', () => api);

import LocalApiPanel from '../components/LocalApiPanel.svelte';

afterEach(() => {
  cleanup();
  vi.clearAllMocks();
});

const off: LocalApi = {
  running: false, address: null, port: 7337, key: '', network: false, startWithTroupe: false,
  origins: [], error: null,
};
const on: LocalApi = { ...off, running: true, address: 'http://127.0.0.1:7337/v1', key: 'troupe-abc123' };

describe('Settings → Local API', () => {
  it('is off until turned on; then shows where it listens, the key and an example', async () => {
    api.localApi.mockResolvedValue(off);
    api.setLocalApi.mockResolvedValue(on);
    const { findByTestId, queryByTestId } = render(LocalApiPanel);
    const toggle = (await findByTestId('api-running')) as HTMLInputElement;
    expect(toggle.checked).toBe(false);
    expect(queryByTestId('api-key')).toBeNull();
    await fireEvent.click(toggle);
    expect(api.setLocalApi).toHaveBeenCalledWith({
      running: true, port: 7337, network: false, startWithTroupe: false, origins: [],
    });
    expect((await findByTestId('api-address')).textContent).toBe('http://127.0.0.1:7337/v1');
    expect(((await findByTestId('api-key')) as HTMLInputElement).value).toBe('troupe-abc123');
    expect((await findByTestId('api-example')).textContent).toContain('Bearer troupe-abc123');
  });

  it('warns when it is reachable from the network, and a new key replaces the old', async () => {
    api.localApi.mockResolvedValue(on);
    api.setLocalApi.mockImplementation(async (c) => ({ ...on, network: c.network }));
    api.newLocalApiKey.mockResolvedValue({ ...on, key: 'troupe-new' });
    const { findByTestId, queryByTestId } = render(LocalApiPanel);
    expect(queryByTestId('api-network-warning')).toBeNull();
    await fireEvent.click(await findByTestId('api-network'));
    expect(api.setLocalApi).toHaveBeenCalledWith(expect.objectContaining({ running: true, network: true }));
    await findByTestId('api-network-warning');
    await fireEvent.click(await findByTestId('api-key-new'));
    await waitFor(async () =>
      expect(((await findByTestId('api-key')) as HTMLInputElement).value).toBe('troupe-new'));
  });

  it('says why it could not start, and shows it off', async () => {
    api.localApi.mockResolvedValueOnce(off).mockResolvedValue(off);
    api.setLocalApi.mockRejectedValue({ code: 'invalid_setting', message: 'cannot listen on 127.0.0.1:7337: Address in use' });
    const { findByTestId } = render(LocalApiPanel);
    await fireEvent.click(await findByTestId('api-running'));
    expect((await findByTestId('api-error')).textContent).toContain('Address in use');
    expect(((await findByTestId('api-running')) as HTMLInputElement).checked).toBe(false);
  });
});
