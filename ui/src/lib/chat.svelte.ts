// The state of one open Session: its messages, the reply being streamed, the last error.
// Components read it and call its methods; it talks to the backend only through ui/src/api/.
import * as api from '../api/conversation';
import * as groups from '../api/groups';
import { BackendError } from '../api/ipc';
import type { Message, ReplyStats, StreamEvent } from '../api/types';
import { t } from './i18n.svelte';

export class ChatState {
  readonly sessionId: number;
  #messages = $state<Message[]>([]);
  #streaming = $state(false);
  #error = $state<BackendError | null>(null);
  #notice = $state<string | null>(null);
  #loaded = $state(false);
  #stats = $state<ReplyStats | null>(null);
  /** The last deleted message, while it can be brought back. */
  #undo = $state<{ undoId: number; preview: string } | null>(null);
  #undoTimer: ReturnType<typeof setTimeout> | undefined;

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
  get undo() {
    return this.#undo;
  }
  /** Figures of the last finished reply: first-token latency and speed. */
  get stats() {
    return this.#stats;
  }

  /** Whether older messages exist than those loaded (a long session opens at its end). */
  get hasEarlier() {
    return this.#hasEarlier;
  }
  #hasEarlier = $state(false);

  /** Opens the session at its newest messages; `all` loads every one (to reach a search hit). */
  async load(all = false) {
    try {
      if (all) {
        this.#messages = await api.listMessages(this.sessionId);
        this.#hasEarlier = false;
      } else {
        this.#messages = await api.recentMessages(this.sessionId, ChatState.PAGE);
        this.#hasEarlier = this.#messages.length === ChatState.PAGE;
      }
    } catch (e) {
      this.#error = e as BackendError;
    }
    this.#loaded = true;
  }

  static readonly PAGE = 100;

  /** Edits a message in place (refused while a reply is being written into it). */
  async edit(id: number, content: string): Promise<boolean> {
    try {
      await api.editMessage(id, content);
      const m = this.#messages.find((x) => x.id === id);
      if (m) m.content = content.trim();
      return true;
    } catch (e) {
      this.#error = e as BackendError;
      return false;
    }
  }

  async remove(id: number) {
    try {
      const gone = this.#messages.find((x) => x.id === id);
      const undoId = await api.deleteMessage(id);
      this.#messages = this.#messages.filter((x) => x.id !== id);
      const text = gone?.content ?? '';
      this.#undo = { undoId, preview: text.length > 40 ? text.slice(0, 40) + '…' : text };
      clearTimeout(this.#undoTimer);
      this.#undoTimer = setTimeout(() => (this.#undo = null), 10_000);
    } catch (e) {
      this.#error = e as BackendError;
    }
  }

  /** Brings the last deleted message back to its place. */
  async undoRemove() {
    const undo = this.#undo;
    if (!undo) return;
    this.#undo = null;
    try {
      await api.undoDelete(undo.undoId);
      await this.load();
    } catch (e) {
      this.#error = e as BackendError;
    }
  }

  dismissUndo() {
    this.#undo = null;
  }

  showError(e: BackendError) {
    this.#error = e;
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
    let group = false;
    try {
      await api.sendMessage(this.sessionId, text, (e) => {
        if (e.event === 'started' || e.event === 'said') accepted = true;
        if (e.event === 'said') group = true;
        this.#apply(e);
      });
      // Several members may have spoken: show each reply as it was kept.
      if (group) await this.load();
    } catch (e) {
      this.#error = e as BackendError;
      // The backend saved what was streamed; show exactly what it kept.
      if (accepted) await this.load();
    } finally {
      this.#streaming = false;
    }
    return accepted;
  }

  /** In a group: `characterId` answers next ("reply as"). */
  replyAs(characterId: string) {
    return this.#round((on) => groups.replyAs(this.sessionId, characterId, on));
  }

  /** In a group: the members talk among themselves for `rounds` replies. */
  letThemTalk(rounds: number) {
    return this.#round((on) => groups.letThemTalk(this.sessionId, rounds, on));
  }

  /** A group round with no message from the person, streamed like `send`. */
  async #round(run: (on: (e: StreamEvent) => void) => Promise<unknown>) {
    if (this.#streaming) return;
    this.#error = null;
    this.#notice = null;
    this.#streaming = true;
    try {
      await run((e) => this.#apply(e));
    } catch (e) {
      this.#error = e as BackendError;
    } finally {
      await this.load();
      this.#streaming = false;
    }
  }

  /** Writes the last reply again (`again`) or continues it; streams into it like `send`. */
  async rewrite(replyId: number, how: 'again' | 'continue') {
    if (this.#streaming) return;
    this.#error = null;
    this.#notice = null;
    this.#streaming = true;
    try {
      const call = how === 'again' ? api.regenerateReply : api.continueReply;
      await call(replyId, (e) => this.#apply(e));
    } catch (e) {
      this.#error = e as BackendError;
      await this.load();
    } finally {
      this.#streaming = false;
    }
  }

  /** Shows version `index` of a reply written more than once. */
  async selectSwipe(id: number, index: number) {
    try {
      const m = await api.selectSwipe(id, index);
      const i = this.#messages.findIndex((x) => x.id === id);
      if (i >= 0) this.#messages[i] = m;
    } catch (e) {
      this.#error = e as BackendError;
    }
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
          this.#notice = t('chat.dropped', { n: e.data.dropped });
        }
        break;
      case 'rewriting': {
        const i = this.#messages.findIndex((m) => m.id === e.data.reply.id);
        if (i >= 0) this.#messages[i] = e.data.reply;
        break;
      }
      case 'said':
        this.#messages.push(e.data.user);
        break;
      case 'speaking':
        this.#messages.push({ ...e.data.reply, speaker: e.data.speaker });
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
