// The one door to the backend: every call goes through `call`, which turns a rejection into an
// ApiError {code, message}. Only files in ui/src/api/ import @tauri-apps (checked by
// tests/architecture.rs), so components stay testable without Tauri.
import { invoke, Channel } from '@tauri-apps/api/core';
import { listen, type UnlistenFn } from '@tauri-apps/api/event';
import type { ApiError, ErrorCode } from './types';

export class BackendError extends Error implements ApiError {
  code: ErrorCode;
  constructor(e: ApiError) {
    super(e.message);
    this.code = e.code;
  }
}

function toApiError(e: unknown): BackendError {
  if (e && typeof e === 'object' && 'code' in e && 'message' in e) {
    return new BackendError(e as ApiError);
  }
  return new BackendError({ code: 'internal', message: String(e) });
}

export async function call<T>(command: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(command, args);
  } catch (e) {
    throw toApiError(e);
  }
}

/** Calls a streaming command: `onEvent` gets each message of its Channel, in order. */
export async function stream<E, T>(
  command: string,
  args: Record<string, unknown>,
  onEvent: (e: E) => void,
): Promise<T> {
  const channel = new Channel<E>();
  channel.onmessage = onEvent;
  return call<T>(command, { ...args, onEvent: channel });
}

export function on<T>(event: string, handler: (payload: T) => void): Promise<UnlistenFn> {
  return listen<T>(event, (e) => handler(e.payload));
}
