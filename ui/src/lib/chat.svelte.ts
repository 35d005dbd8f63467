// The state of one open Session: its messages, the reply being streamed, the last error.
// Components read it and call its methods; it talks to the backend only through ui/src/api/.
import * as api from '../api/conversation';
import { BackendError } from '../api/ipc';
import type { Message, ReplyStats, StreamEvent } from '../api/types';

export class ChatState {
  readonly sessionId: number;
  #messages = $state<Message[]>([]);
  #streaming = $state(false);
  #error = $state<BackendError | null>(null);
  #notice = $state<string | null>(null);
  #loaded = $state(false);
  #stats = $state<ReplyStats | null>(null);

  constructor(sessionId: number) {
    this.sessionId = sessionId;
  }

  get messages() {
    return this.#messages;
  }
  get streaming() {
    return this.#streaming;
  }
  get error() {
    return this.#error;
  }
  get notice() {
    return this.#notice;
  }
  get loaded() {
    return this.#loaded;
  }
  /** Figures of the last finished reply: first-token latency and speed. */
  get stats() {
    return this.#stats;
  }

  async load() {
    try {
      this.#messages = await api.listMessages(this.sessionId);
    } catch (e) {
      this.#error = e as BackendError;
    }
    this.#loaded = true;
  }

  dismissError() {
    this.#error = null;
  }

  /** Sends `text`. Resolves true when it was accepted (even if the reply later stopped early);
   *  false when nothing was sent, so the caller keeps the text in the box. */
  async send(text: string): Promise<boolean> {
    if (!text.trim() || this.#streaming) return false;
    this.#error = null;
    this.#notice = null;
    this.#streaming = true;
    let accepted = false;
    try {
      await api.sendMessage(this.sessionId, text, (e) => {
        if (e.event === 'started') accepted = true;
        this.#apply(e);
      });
    } catch (e) {
      this.#error = e as BackendError;
      // The backend saved what was streamed; show exactly what it kept.
      if (accepted) await this.load();
    } finally {
      this.#streaming = false;
    }
    return accepted;
  }

  /** Asks the engine to prefill this session's prompt while the user reads and types. Best
   *  effort: a model that is not ready yet simply means no warm-up. */
  warm() {
    api.warmSession(this.sessionId).catch(() => {});
  }

  async stop() {
    if (this.#streaming) await api.stopReply(this.sessionId);
  }

  #apply(e: StreamEvent) {
    switch (e.event) {
      case 'started':
        this.#messages.push(e.data.user, e.data.reply);
        if (e.data.dropped > 0) {
          this.#notice = `${e.data.dropped} older messages no longer fit the model's memory and were left out of this reply.`;
        }
        break;
      case 'text': {
        const last = this.#messages[this.#messages.length - 1];
        if (last) last.content += e.data.text;
        break;
      }
      case 'finished': {
        const i = this.#messages.findIndex((m) => m.id === e.data.reply.id);
        if (i >= 0) this.#messages[i] = e.data.reply;
        this.#stats = e.data.stats;
        break;
      }
    }
  }
}
