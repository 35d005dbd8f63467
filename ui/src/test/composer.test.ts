import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, render, fireEvent } from '@testing-library/svelte';
import Composer from '../components/Composer.svelte';

afterEach(cleanup);

describe('Composer', () => {
  it('keys: Escape stops a reply, ↑ in an empty box edits the last message, Alt+←/→ switch versions', async () => {
    const onstop = vi.fn();
    const oneditlast = vi.fn();
    const onswipe = vi.fn();
    const { getByLabelText, rerender } = render(Composer, { streaming: true, onsend: vi.fn(), onstop, oneditlast, onswipe });
    const box = getByLabelText('Message') as HTMLTextAreaElement;
    await fireEvent.keyDown(box, { key: 'Escape' });
    expect(onstop).toHaveBeenCalledTimes(1);
    await fireEvent.keyDown(box, { key: 'ArrowUp' });
    expect(oneditlast).not.toHaveBeenCalled();
    await rerender({ streaming: false });
    await fireEvent.keyDown(box, { key: 'ArrowUp' });
    expect(oneditlast).toHaveBeenCalledTimes(1);
    await fireEvent.input(box, { target: { value: 'half a thought' } });
    await fireEvent.keyDown(box, { key: 'ArrowUp' });
    expect(oneditlast).toHaveBeenCalledTimes(1);
    await fireEvent.keyDown(box, { key: 'ArrowLeft', altKey: true });
    await fireEvent.keyDown(box, { key: 'ArrowRight', altKey: true });
    expect(onswipe.mock.calls).toEqual([[-1], [1]]);
    await fireEvent.keyDown(box, { key: 'Escape' });
    expect(onstop).toHaveBeenCalledTimes(1);
  });

  it('sends on Enter, inserts a newline on Shift+Enter, and ignores blank input', async () => {
    const onsend = vi.fn().mockResolvedValue(true);
    const { getByLabelText } = render(Composer, { streaming: false, onsend, onstop: () => {} });
    const box = getByLabelText('Message') as HTMLTextAreaElement;
    await fireEvent.input(box, { target: { value: '   ' } });
    await fireEvent.keyDown(box, { key: 'Enter' });
    expect(onsend).not.toHaveBeenCalled();
    await fireEvent.input(box, { target: { value: 'line one' } });
    await fireEvent.keyDown(box, { key: 'Enter', shiftKey: true });
    expect(onsend).not.toHaveBeenCalled();
    await fireEvent.keyDown(box, { key: 'Enter' });
    expect(onsend).toHaveBeenCalledWith('line one');
    expect(box.value).toBe('');
  });

  it('gives the text back when the message was not sent', async () => {
    const onsend = vi.fn().mockResolvedValue(false);
    const { getByLabelText } = render(Composer, { streaming: false, onsend, onstop: () => {} });
    const box = getByLabelText('Message') as HTMLTextAreaElement;
    await fireEvent.input(box, { target: { value: 'keep me' } });
    await fireEvent.keyDown(box, { key: 'Enter' });
    await new Promise((r) => setTimeout(r, 0));
    expect(box.value).toBe('keep me');
  });

  it('shows Stop while a reply streams', async () => {
    const onstop = vi.fn();
    const { getByText } = render(Composer, { streaming: true, onsend: vi.fn(), onstop });
    await fireEvent.click(getByText('Stop'));
    expect(onstop).toHaveBeenCalled();
  });
});
