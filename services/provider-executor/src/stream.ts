/**
 * Incremental server-sent-events parser shared by every adapter (WHATWG SSE: `event:` and
 * `data:` fields, multi-line data joined by "\n", comments ignored, LF or CRLF line ends).
 * Feed it body chunks as they arrive; it calls `onEvent` for each complete event.
 */
export class SseParser {
  private readonly decoder = new TextDecoder();
  private buf = '';
  private event = '';
  private data = '';
  private hasData = false;

  constructor(private readonly onEvent: (event: string, data: string) => void) {}

  push(chunk: Uint8Array | string): void {
    const text = typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    this.buf = this.buf.length === 0 ? text : this.buf + text;
    let start = 0;
    for (;;) {
      const nl = this.buf.indexOf('\n', start);
      if (nl < 0) break;
      const end = nl > start && this.buf.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
      this.line(this.buf.slice(start, end));
      start = nl + 1;
    }
    this.buf = start === 0 ? this.buf : this.buf.slice(start);
  }

  /** Flushes a last event not followed by a blank line. */
  end(): void {
    const rest = this.buf + this.decoder.decode();
    this.buf = '';
    if (rest.length > 0) this.line(rest.endsWith('\r') ? rest.slice(0, -1) : rest);
    this.dispatch();
  }

  private line(line: string): void {
    if (line.length === 0) {
      this.dispatch();
      return;
    }
    if (line.charCodeAt(0) === 58 /* ':' comment */) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    if (field === 'data') {
      this.data = this.hasData ? `${this.data}\n${value}` : value;
      this.hasData = true;
    } else if (field === 'event') {
      this.event = value;
    }
  }

  private dispatch(): void {
    if (this.hasData) this.onEvent(this.event, this.data);
    this.event = '';
    this.data = '';
    this.hasData = false;
  }
}
