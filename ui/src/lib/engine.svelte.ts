// The model's status, for the status bar and the composer: follows the backend's
// `engine://status` event after one initial query.
import * as api from '../api/engine';
import type { EngineStatus } from '../api/types';

class EngineState {
  #status = $state<EngineStatus | null>(null);

  get status() {
    return this.#status;
  }
  get ready() {
    return this.#status?.state === 'ready';
  }

  async start() {
    await api.onEngineStatus((s) => (this.#status = s));
    try {
      const s = await api.engineStatus();
      // An event may already have arrived with something newer than "loading".
      if (!this.#status || this.#status.state === 'loading') this.#status = s;
    } catch (e) {
      this.#status = { state: 'failed', error: { code: 'internal', message: String((e as Error).message ?? e) } };
    }
  }

  set(s: EngineStatus) {
    this.#status = s;
  }
}

export const engine = new EngineState();
