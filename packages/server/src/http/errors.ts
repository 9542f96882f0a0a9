/** HTTP errors: every refusal is JSON `{"error": {"code", "message"}}` with a code from @parley/protocol. */
import { type HttpErrorBody, type HttpErrorCode, HttpErrorCodes } from '@parley/protocol';

export class HttpError extends Error {
  readonly status: number;
  constructor(
    readonly code: HttpErrorCode,
    message: string = HttpErrorCodes[code][1],
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.status = HttpErrorCodes[code][0];
  }
}

export function errorBody(code: HttpErrorCode, message: string = HttpErrorCodes[code][1]): string {
  const body: HttpErrorBody = { error: { code, message } };
  return JSON.stringify(body);
}
