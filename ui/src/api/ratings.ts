// Ratings: the person as the judge. A Session's seven scores, thumbs on replies, and a
// Character's averages per model. Everything stays in the library on this computer.
import { call } from './ipc';
import type { Rating, RatingAverages, Scores, Thumb, TrainingData } from './types';

/** Rates a Session (again: replaces the rating). */
export const rateSession = (sessionId: number, scores: Scores, comment: string) =>
  call<Rating>('rate_session', { sessionId, scores, comment });
export const sessionRating = (sessionId: number) => call<Rating | null>('session_rating', { sessionId });
/** A thumb up (1), down (-1) or none (0) on one of the Character's replies. */
export const setThumb = (messageId: number, value: number) => call<void>('set_thumb', { messageId, value });
export const sessionThumbs = (sessionId: number) => call<Thumb[]>('session_thumbs', { sessionId });
/** A Character's (null: every Character's) ratings and thumbs averaged per model, the most rated first. */
export const ratingAverages = (characterId: string | null) => call<RatingAverages[]>('rating_averages', { characterId });
/** Writes the rated conversations (SFT) and the settled swipes (DPO) of a Character as JSONL in Downloads. */
export const exportTrainingData = (characterId: string | null) =>
  call<TrainingData>('export_training_data', { characterId });
