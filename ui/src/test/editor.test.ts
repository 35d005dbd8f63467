// The editor against a mocked api/: validation shown by field, the preview following the
// fields, model-written forms filling their box, and the unsaved-changes guard. The real path
// (real model, real webview, real database) is tests/e2e.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, waitFor } from '@testing-library/svelte';
import type { CharacterEdit, CharacterPreview } from '../api/types';

const api = vi.hoisted(() => ({
  getCharacterEdit: vi.fn(),
  previewCharacter: vi.fn(),
  saveCharacter: vi.fn(),
  writeProfileForm: vi.fn(),
  stopProfileForm: vi.fn(),
}));
vi.mock('../api/characters', async (orig) => ({ ...(await orig<typeof import('../api/characters')>()), ...api }));
vi.mock('../api/engine', () => ({ onEngineStatus: vi.fn(), engineStatus: vi.fn() }));

import CharacterEditor from '../components/CharacterEditor.svelte';
import { engine } from '../lib/engine.svelte';

const preview = (edit: CharacterEdit): CharacterPreview => ({
  profileText: edit.attributes.identity || `${edit.name} has no profile yet.`,
  prose: '',
  prompt: `<|im_start|>system\nYou are ${edit.name}.`,
  tokens: 120,
  exact: true,
  contextTokens: 4096,
  note: null,
  problems: edit.name.trim() ? [] : [{ field: 'name', message: 'Give the character a name.' }],
});

beforeEach(() => {
  vi.resetAllMocks();
  api.previewCharacter.mockImplementation(async (e: CharacterEdit) => preview(e));
  engine.set({ state: 'ready', model: null } as never);
});
afterEach(cleanup);

const settle = () => new Promise((r) => setTimeout(r, 300));

describe('CharacterEditor', () => {
  it('flags a missing name on save, previews the prompt, and saves the fields', async () => {
    api.saveCharacter.mockResolvedValue({ id: 'marta' });
    const onsaved = vi.fn();
    const { getByTestId, findByTestId, queryByTestId } = render(CharacterEditor, { characterId: null, onsaved, oncancel: () => {} });
    await settle();
    // An empty new form is not an error until the user tries to save it.
    expect(queryByTestId('problem-name')).toBeNull();
    await fireEvent.click(getByTestId('editor-save'));
    expect((await findByTestId('problem-name')).textContent).toBe('Give the character a name.');
    expect(api.saveCharacter).not.toHaveBeenCalled();

    await fireEvent.input(getByTestId('field-name'), { target: { value: 'Marta' } });
    await fireEvent.input(getByTestId('field-attributes.identity'), { target: { value: 'A baker in Lisbon.' } });
    await fireEvent.input(getByTestId('field-tags'), { target: { value: 'baker, Lisbon ,' } });
    await settle();
    expect(getByTestId('preview-prose').textContent).toBe('A baker in Lisbon.');
    expect(getByTestId('preview-tokens').textContent).toContain('120 tokens of 4,096');
    expect(getByTestId('preview-prompt').textContent).toContain('You are Marta.');
    expect(queryByTestId('problem-name')).toBeNull();

    await fireEvent.click(getByTestId('editor-save'));
    await waitFor(() => expect(onsaved).toHaveBeenCalledWith('marta'));
    const [edit, avatar, remove] = api.saveCharacter.mock.calls[0];
    expect(edit.name).toBe('Marta');
    expect(edit.attributes.identity).toBe('A baker in Lisbon.');
    expect(edit.tags).toEqual(['baker', 'Lisbon']);
    expect(edit.id).toBeNull();
    expect([avatar, remove]).toEqual([null, false]);
  });

  it('asks before throwing away unsaved changes', async () => {
    const oncancel = vi.fn();
    const { getByTestId, findByTestId, queryByTestId } = render(CharacterEditor, { characterId: null, onsaved: () => {}, oncancel });
    await settle();
    // Nothing changed: leaving needs no question.
    await fireEvent.click(getByTestId('editor-cancel'));
    expect(oncancel).toHaveBeenCalledTimes(1);

    await fireEvent.input(getByTestId('field-name'), { target: { value: 'Marta' } });
    expect(getByTestId('dirty').textContent).toBe('Unsaved changes');
    await fireEvent.click(getByTestId('editor-cancel'));
    await findByTestId('confirm-leave');
    await fireEvent.click(getByTestId('keep-editing'));
    expect(queryByTestId('confirm-leave')).toBeNull();
    expect((getByTestId('field-name') as HTMLInputElement).value).toBe('Marta');
    expect(oncancel).toHaveBeenCalledTimes(1);
    await fireEvent.click(getByTestId('editor-cancel'));
    await fireEvent.click(await findByTestId('discard'));
    expect(oncancel).toHaveBeenCalledTimes(2);
  });

  it('has the model write a form into its box, where it can be edited', async () => {
    const stored = { ...(await import('../api/characters')).blankCharacter(), id: 'ada', name: 'Ada' };
    api.getCharacterEdit.mockResolvedValue(stored);
    api.writeProfileForm.mockResolvedValue('I am Ada, and I count.');
    const { getByTestId, findByTestId } = render(CharacterEditor, { characterId: 'ada', onsaved: () => {}, oncancel: () => {} });
    await settle();
    expect(getByTestId('dirty').textContent).toBe('Saved');
    await fireEvent.click(await findByTestId('write-self_intro'));
    await waitFor(() => expect((getByTestId('field-forms.self_intro') as HTMLTextAreaElement).value).toBe('I am Ada, and I count.'));
    expect(api.writeProfileForm.mock.calls[0][1]).toBe('self_intro');
    expect(getByTestId('dirty').textContent).toBe('Unsaved changes');
  });

  it('stops the model writing a form, with no error and the box as it was', async () => {
    const stored = { ...(await import('../api/characters')).blankCharacter(), id: 'ada', name: 'Ada' };
    api.getCharacterEdit.mockResolvedValue(stored);
    let reject: (e: unknown) => void = () => {};
    api.writeProfileForm.mockReturnValue(new Promise((_, r) => (reject = r)));
    api.stopProfileForm.mockImplementation(async () => reject({ code: 'stopped', message: 'stopped' }));
    const { getByTestId, findByTestId, queryByTestId, container } = render(CharacterEditor, { characterId: 'ada', onsaved: () => {}, oncancel: () => {} });
    await settle();
    await fireEvent.click(await findByTestId('write-summary'));
    expect(queryByTestId('write-summary')).toBeNull();
    await fireEvent.click(getByTestId('stop-summary'));
    expect(api.stopProfileForm).toHaveBeenCalledTimes(1);
    await findByTestId('write-summary');
    expect((getByTestId('field-forms.summary') as HTMLTextAreaElement).value).toBe('');
    expect(container.querySelector('[role="alert"], .error')).toBeNull();
  });
});
