// Rating a conversation and thumbing replies, against a mocked api/: the seven metrics with their
// meanings, the scores sent as picked, a refusal shown, a stored rating loaded back, and the
// thumbs on replies (not on the greeting or the person's messages). The real path (real
// model, real database, real window) is tests/ratings.rs and tests/e2e.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, waitFor } from '@testing-library/svelte';
import type { Message, Rating } from '../api/types';

const api = vi.hoisted(() => ({
  rateSession: vi.fn(),
  sessionRating: vi.fn(),
  setThumb: vi.fn(),
  sessionThumbs: vi.fn(),
  ratingAverages: vi.fn(),
}));
vi.mock('../api/ratings', () => api);

import RateDialog from '../components/RateDialog.svelte';
import MessageBubble from '../components/MessageBubble.svelte';
import { allAt } from '../lib/ratings';

beforeEach(() => {
  vi.resetAllMocks();
});
afterEach(cleanup);

const stored: Rating = {
  sessionId: 7, model: 'qwen.gguf', comment: 'Kind.', createdAt: Date.now() - 60_000,
  scores: { consistency: 5, humanLikeness: 4, engagement: 3, quality: 4, safety: 5, correctness: 2, overall: 4 },
};

describe('RateDialog', () => {
  it('shows the seven metrics with their meanings and sends the scores picked', async () => {
    api.sessionRating.mockResolvedValue(null);
    api.rateSession.mockImplementation(async (id, scores, comment) => ({ ...stored, sessionId: id, scores, comment }));
    const onclose = vi.fn();
    const { getByTestId, getAllByRole } = render(RateDialog, { sessionId: 7, onclose });
    expect(getAllByRole('radiogroup')).toHaveLength(7);
    expect(getByTestId('metric-humanLikeness').textContent).toContain('Talks like a person, not a machine');
    await fireEvent.click(getByTestId('metric-consistency').querySelector('[data-score="5"]')!);
    await fireEvent.click(getByTestId('metric-correctness').querySelector('[data-score="1"]')!);
    await fireEvent.input(getByTestId('rate-comment'), { target: { value: 'Forgot my dog.' } });
    await fireEvent.click(getByTestId('rate-save'));
    await waitFor(() => expect(onclose).toHaveBeenCalled());
    expect(api.rateSession).toHaveBeenCalledWith(7, { ...allAt(3), consistency: 5, correctness: 1 }, 'Forgot my dog.');
  });

  it('loads a stored rating and shows a refusal without closing', async () => {
    api.sessionRating.mockResolvedValue(stored);
    api.rateSession.mockRejectedValue({ code: 'invalid_rating', message: 'there is nothing to rate yet' });
    const onclose = vi.fn();
    const { getByTestId, findByTestId } = render(RateDialog, { sessionId: 7, onclose });
    expect((await findByTestId('rated-with')).textContent).toContain('qwen.gguf');
    expect(getByTestId('metric-correctness').querySelector('[aria-checked="true"]')!.textContent).toBe('2');
    expect((getByTestId('rate-comment') as HTMLTextAreaElement).value).toBe('Kind.');
    await fireEvent.click(getByTestId('rate-save'));
    expect((await findByTestId('rate-error')).textContent).toBe('there is nothing to rate yet');
    expect(onclose).not.toHaveBeenCalled();
  });
});

describe('thumbs on a reply', () => {
  const reply: Message = { id: 3, role: 'character', content: 'Hello!', status: 'complete', createdAt: 0, swipes: ['Hello!'], swipe: 0 } as Message;

  it('toggles up, down and off; only where the panel offers them', async () => {
    const onthumb = vi.fn();
    const { container, rerender } = render(MessageBubble, { message: reply, name: 'Ada', onaction: () => {}, thumb: 0, onthumb });
    const up = () => container.querySelector('[data-action="thumb-up"]') as HTMLButtonElement;
    await fireEvent.click(up());
    expect(onthumb).toHaveBeenLastCalledWith(reply, 1);
    await rerender({ message: reply, name: 'Ada', onaction: () => {}, thumb: 1, onthumb });
    expect(up().getAttribute('aria-pressed')).toBe('true');
    await fireEvent.click(up());
    expect(onthumb).toHaveBeenLastCalledWith(reply, 0);
    await fireEvent.click(container.querySelector('[data-action="thumb-down"]')!);
    expect(onthumb).toHaveBeenLastCalledWith(reply, -1);
    await rerender({ message: reply, name: 'Ada', onaction: () => {}, thumb: 0, onthumb: undefined });
    expect(up()).toBeNull();
  });
});
