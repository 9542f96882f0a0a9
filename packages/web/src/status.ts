/**
 * The connection state, shown as a pill in the header (with a live countdown while waiting to
 * reconnect) and announced to screen readers through a polite live region, once per change.
 */
import type { StateEvent } from '@parley/client';

export class StatusView {
  private timer: ReturnType<typeof setInterval> | undefined;
  private lastAnnounced = '';

  constructor(
    private readonly pill: HTMLElement,
    private readonly text: HTMLElement,
    private readonly live: HTMLElement,
    private readonly meStatus: HTMLElement,
    private readonly offlineNote: HTMLElement,
  ) {}

  show(e: Pick<StateEvent, 'state' | 'delayMs'>): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    const kind = e.state === 'open' ? 'online' : e.state === 'reconnecting' ? 'reconnecting' : e.state === 'closed' ? 'offline' : 'connecting';
    this.pill.dataset.state = kind;
    this.offlineNote.hidden = kind === 'online' || kind === 'connecting';
    switch (kind) {
      case 'online':
        this.set('Online', 'Online', 'Connected.');
        break;
      case 'connecting':
        this.set('Connecting…', 'Connecting…', 'Connecting…');
        break;
      case 'offline':
        this.set('Offline', 'Offline', 'Offline. Not connected to the server.');
        break;
      case 'reconnecting': {
        const due = Date.now() + (e.delayMs ?? 0);
        const tick = () => {
          const left = Math.ceil((due - Date.now()) / 1000);
          const label = left > 0 ? `Reconnecting in ${left}s` : 'Reconnecting…';
          this.text.textContent = label;
          this.meStatus.textContent = label;
          if (left <= 0 && this.timer !== undefined) {
            clearInterval(this.timer);
            this.timer = undefined;
          }
        };
        tick();
        if ((e.delayMs ?? 0) > 0) this.timer = setInterval(tick, 250);
        this.announce('Connection lost. Reconnecting…');
        break;
      }
    }
  }

  private set(pill: string, me: string, announcement: string): void {
    this.text.textContent = pill;
    this.meStatus.textContent = me;
    this.announce(announcement);
  }

  private announce(text: string): void {
    if (text === this.lastAnnounced) return;
    this.lastAnnounced = text;
    this.live.textContent = text;
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }
}
